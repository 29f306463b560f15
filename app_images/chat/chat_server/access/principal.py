"""Who is calling and what each route lets them do: pure rules, no I/O.

A principal is the deployment's admin (the shared `CHAT_API_KEY`) or a user (an OIDC subject
with groups and roles). Every route declares one permission from `PERMISSIONS`; a route that
declares none is for admins only, so a route added without thought is closed, not open.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

Via = Literal["api_key", "oidc", "personal_token", "anonymous"]
GLOBAL_ROLES = ("admin", "creator")
SCOPES = ("read", "write")


class KbRole(IntEnum):
    """Roles on one knowledge base; a higher role includes the lower ones."""

    none = 0
    reader = 1
    editor = 2
    owner = 3


@dataclass(frozen=True)
class Permission:
    """What a route needs: a credential, a token scope, a global role or a role on the KB."""

    name: str
    scope: Literal["read", "write"] | None
    kb_role: KbRole = KbRole.none
    global_role: str | None = None
    session_only: bool = False
    summary: str = ""


PERMISSIONS: dict[str, Permission] = {
    p.name: p
    for p in (
        Permission("public", None, summary="anyone, no credential"),
        Permission("signed_in", "read", summary="any signed-in principal"),
        Permission(
            "kb_list", "read", summary="any signed-in principal; answers list only readable KBs"
        ),
        Permission("kb_create", "write", global_role="creator", summary="role creator or admin"),
        Permission("kb_read", "read", KbRole.reader, summary="reader of the KB"),
        Permission("kb_write", "write", KbRole.editor, summary="editor of the KB"),
        Permission("kb_own", "write", KbRole.owner, summary="owner of the KB"),
        Permission(
            "tokens",
            "write",
            session_only=True,
            summary="a user signed in through the identity provider (not a personal token)",
        ),
        Permission("admin", "write", global_role="admin", summary="admin only"),
    )
}
# A route with no declared permission is treated as this one: closed to everyone but admins.
UNDECLARED = PERMISSIONS["admin"]
PERMISSION_KEY = "x-permission"


def declare(name: str) -> dict[str, Any]:
    """`openapi_extra` for a route: its permission, visible in the OpenAPI document."""
    if name not in PERMISSIONS:
        raise ValueError(f"unknown permission {name!r}; use one of {sorted(PERMISSIONS)}")
    return {PERMISSION_KEY: name}


@dataclass(frozen=True)
class Principal:
    subject: str
    via: Via
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset(SCOPES)
    name: str = ""
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.via == "api_key" or "admin" in self.roles

    @property
    def is_user(self) -> bool:
        return self.via in ("oidc", "personal_token")

    def describe(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "name": self.name,
            "via": self.via,
            "admin": self.is_admin,
            "groups": sorted(self.groups),
            "roles": sorted(self.roles),
            "scopes": sorted(self.scopes),
        }


ADMIN = Principal(subject="admin", via="api_key", roles=frozenset({"admin"}), name="admin")
ANONYMOUS = Principal(subject="", via="anonymous", scopes=frozenset())


def route_refusal(principal: Principal, permission: Permission) -> str | None:
    """Why the principal may not call a route with this permission; None when it may.

    Roles on a knowledge base are checked by the route itself once it knows the name.
    """
    if permission.name == "public" or principal.is_admin and not permission.session_only:
        return None
    if permission.session_only and principal.via != "oidc":
        return "needs a user signed in through the identity provider"
    if permission.scope is not None and permission.scope not in principal.scopes:
        return f"the token lacks the {permission.scope!r} scope"
    if permission.global_role is not None and not (
        permission.global_role in principal.roles or principal.is_admin
    ):
        return f"needs the {permission.global_role!r} role"
    return None


@dataclass(frozen=True)
class Grant:
    kb: str
    kind: Literal["user", "group"]
    principal: str
    role: KbRole


def kb_role(principal: Principal, grants: Iterable[Grant]) -> KbRole:
    """The principal's role on a KB: the highest of its user grant and its groups' grants."""
    if principal.is_admin:
        return KbRole.owner
    best = KbRole.none
    for g in grants:
        if (g.kind == "user" and g.principal == principal.subject) or (
            g.kind == "group" and g.principal in principal.groups
        ):
            best = max(best, g.role)
    return best


@dataclass(frozen=True)
class RoleMapping:
    """Claim values (groups or roles from the identity provider) to global roles, by config."""

    by_claim: Mapping[str, frozenset[str]]
    default: frozenset[str]

    @classmethod
    def parse(cls, mapping: str, default: str) -> RoleMapping:
        """`AUTH_ROLE_MAP` (JSON: claim value to a role or list of roles), `AUTH_DEFAULT_ROLES`."""
        try:
            raw = json.loads(mapping or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"AUTH_ROLE_MAP is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError('AUTH_ROLE_MAP must be a JSON object, e.g. {"chat-admins": "admin"}')
        by_claim = {}
        for claim, roles in raw.items():
            names = [roles] if isinstance(roles, str) else roles
            by_claim[str(claim)] = _roles(names, f"AUTH_ROLE_MAP[{claim!r}]")
        defaults = [r.strip() for r in default.split(",") if r.strip()]
        return cls(by_claim, _roles(defaults, "AUTH_DEFAULT_ROLES"))

    def roles_for(self, claim_values: Iterable[str]) -> frozenset[str]:
        roles = set(self.default)
        for value in claim_values:
            roles |= self.by_claim.get(value, frozenset())
        return frozenset(roles)


def _roles(names: object, key: str) -> frozenset[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{key} must be a role name or a list of them")
    bad = sorted(set(names) - set(GLOBAL_ROLES))
    if bad:
        raise ValueError(f"{key}: unknown role(s) {bad}; the roles are {list(GLOBAL_ROLES)}")
    return frozenset(names)


def claim_values(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    """A claim as a set of strings: a list, a space- or comma-separated string, or absent.

    `name` may be a dotted path (`realm_access.roles`, as Keycloak nests them).
    """
    value: Any = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    return frozenset({str(value)})
