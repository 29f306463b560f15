"""Shared dependencies, read from `app.state`: settings, the knowledge service, the llm, access.

`authorize` is installed on the app itself, so it runs for every route of every router,
including routers added later: it resolves the caller once per request and checks the
permission the route declares (`chat_server.access.principal.declare`). A route that declares
none is for admins only. Roles on a knowledge base are checked by the route through `Access`,
once it has the name.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from chat_server.access.authenticate import Authenticator, key_matches
from chat_server.access.principal import (
    ANONYMOUS,
    PERMISSION_KEY,
    PERMISSIONS,
    UNDECLARED,
    KbRole,
    Permission,
    Principal,
    kb_role,
    route_refusal,
)
from chat_server.access.store import AccessStore
from chat_server.errors import ServiceError
from chat_server.kb.service import FilePage, KnowledgeService
from chat_server.llm_client import LLMClient
from chat_server.settings import Settings
from chat_server.stores.base import KnowledgeBaseError, validate_kb_name

__all__ = ["AUTH", "key_matches"]
_bearer = HTTPBearer(auto_error=False, description="API key, OIDC access token or personal token")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> KnowledgeService:
    service: KnowledgeService | None = request.app.state.service
    if service is None:
        raise ServiceError(503, "the knowledge-base service is still starting", retry_after_s=5)
    return service


def get_llm(request: Request) -> LLMClient:
    llm: LLMClient = request.app.state.llm
    return llm


def route_permission(route: Any) -> Permission:
    """The permission a route declares in its `openapi_extra`; admin-only when it declares none."""
    extra = getattr(route, "openapi_extra", None) or {}
    return PERMISSIONS.get(str(extra.get(PERMISSION_KEY)), UNDECLARED)


async def authorize(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, checked against the route's permission: 401 without a credential, else 403."""
    route = request.scope.get("route")
    permission = route_permission(route)
    principal = ANONYMOUS
    if permission.name != "public":
        authenticator: Authenticator = request.app.state.authenticator
        token = creds.credentials if creds is not None else None
        principal = await run_in_threadpool(authenticator.resolve, token)
        why = route_refusal(principal, permission)
        if why is not None:
            raise ServiceError(403, f"{request.method} {request.url.path}: {why}")
    request.state.principal = principal
    return principal


def kb_not_found(name: str) -> KnowledgeBaseError:
    """The same answer as for a KB that does not exist, so a refusal reveals nothing."""
    return KnowledgeBaseError(404, f"knowledge base {name!r} not found")


class Access:
    """The caller's rights on knowledge bases, and the audit log of what they change."""

    def __init__(self, principal: Principal, store: AccessStore) -> None:
        self.principal = principal
        self.store = store

    def role_on(self, kb: str) -> KbRole:
        if self.principal.is_admin:
            return KbRole.owner
        return kb_role(self.principal, self.store.grants(kb))

    def require(self, name: str, needed: KbRole) -> str:
        """The KB's normalised name when the caller holds `needed` on it.

        No role at all is answered as a missing KB (404); a lower role than needed, 403.
        """
        try:
            kb = validate_kb_name(name)
        except ValueError as exc:
            raise KnowledgeBaseError(400, str(exc)) from exc
        role = self.role_on(kb)
        if role is KbRole.none:
            raise kb_not_found(kb)
        if role < needed:
            raise ServiceError(
                403, f"needs the {needed.name} role on knowledge base {kb!r} (you are {role.name})"
            )
        return kb

    async def check(self, name: str, needed: KbRole) -> str:
        return await run_in_threadpool(self.require, name, needed)

    def readable(self, names: list[str]) -> list[str]:
        if self.principal.is_admin:
            return names
        mine = {
            g.kb for g in self.store.all_grants() if kb_role(self.principal, [g]) >= KbRole.reader
        }
        return [n for n in names if unicodedata.normalize("NFC", n) in mine]

    async def audit(self, action: str, kb: str | None, **detail: Any) -> None:
        p = self.principal
        await run_in_threadpool(self.store.audit, p.subject, p.via, action, kb, detail)


def get_access(request: Request, principal: Annotated[Principal, Depends(authorize)]) -> Access:
    store: AccessStore | None = request.app.state.authenticator.store
    if store is None:
        raise ServiceError(503, "the access store is still starting", retry_after_s=5)
    return Access(principal, store)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[KnowledgeService, Depends(get_service)]
LLMDep = Annotated[LLMClient, Depends(get_llm)]
PrincipalDep = Annotated[Principal, Depends(authorize)]
AccessDep = Annotated[Access, Depends(get_access)]
# Kept for routers that list it: the app already runs `authorize` (resolved once per request).
AUTH = [Depends(authorize)]


MAX_FILE_PAGE = 1000  # files one listing request may ask for


def file_page(
    offset: int = Query(0, ge=0, description="files to skip, by name"),
    limit: int | None = Query(
        None, ge=1, le=MAX_FILE_PAGE, description="files to list (all when not given)"
    ),
    name_contains: str | None = Query(
        None, max_length=255, description="only files whose name contains this (any case)"
    ),
) -> FilePage:
    """The page of a KB's file listing a request asks for (`list_files`, `imported_files`);
    without parameters, every file, as Chatchat 0.2 lists them."""
    return FilePage(offset, limit, name_contains or None)


FilePageDep = Annotated[FilePage, Depends(file_page)]
