"""Personal API tokens, knowledge-base grants, the users last seen and the audit log, in SQL.

SQLite on the KB volume (`access.sqlite` beside `info.sqlite`) or, where ADB/PostgreSQL is the
default store (several replicas), that database. Only the placeholder differs; the SQL keeps to
PostgreSQL 9.4 grammar like the rest (no `ON CONFLICT`: a delete and an insert in one
transaction). Token secrets are stored as SHA-256 digests: they are 256-bit random values, so
a slow hash adds nothing, and a stolen database holds no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from chat_server.access.principal import Grant, KbRole
from chat_server.stores.base import SqlStore

TOKEN_PREFIX = "chat_pat_"
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS chat_token (
        id TEXT PRIMARY KEY, subject TEXT NOT NULL, name TEXT NOT NULL, scopes TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS chat_user (
        subject TEXT PRIMARY KEY, name TEXT NOT NULL, groups_json TEXT NOT NULL,
        roles_json TEXT NOT NULL, seen_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS chat_grant (
        kb TEXT NOT NULL, kind TEXT NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL,
        granted_by TEXT NOT NULL, granted_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kb, kind, principal))""",
    """CREATE TABLE IF NOT EXISTS chat_audit (
        id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
        via TEXT NOT NULL, action TEXT NOT NULL, kb TEXT, detail TEXT NOT NULL)""",
]


@dataclass(frozen=True)
class PersonalToken:
    id: str
    subject: str
    name: str
    scopes: frozenset[str]
    created_at: float
    expires_at: float
    revoked_at: float | None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked": self.revoked_at is not None,
        }


@dataclass(frozen=True)
class KnownUser:
    subject: str
    name: str
    groups: frozenset[str]
    roles: frozenset[str]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """`chat_pat_<id>_<secret>` into (id, secret); None when it is not of that shape."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    return (token_id, secret) if sep and token_id and secret else None


class AccessStore(SqlStore):
    """Users seen, personal tokens, grants and the audit log (SQLite or PostgreSQL)."""

    SCHEMA = SCHEMA

    # -- personal tokens -------------------------------------------------------------------
    def create_token(
        self, subject: str, name: str, scopes: frozenset[str], ttl_s: float
    ) -> tuple[str, PersonalToken]:
        """A new token: the secret is returned once, only its digest is kept."""
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        record = PersonalToken(token_id, subject, name, scopes, now, now + ttl_s, None)
        self._run(
            "INSERT INTO chat_token (id, subject, name, scopes, secret_sha256, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_id, subject, name, " ".join(sorted(scopes)), digest(secret), now, now + ttl_s),
        )
        return f"{TOKEN_PREFIX}{token_id}_{secret}", record

    def _token(self, row: tuple[Any, ...]) -> PersonalToken:
        token_id, subject, name, scopes, created, expires, revoked = row
        return PersonalToken(
            token_id, subject, name, frozenset(scopes.split()), created, expires, revoked
        )

    _TOKEN_COLUMNS = "id, subject, name, scopes, created_at, expires_at, revoked_at"

    def tokens_of(self, subject: str) -> list[PersonalToken]:
        rows = self._run(
            f"SELECT {self._TOKEN_COLUMNS} FROM chat_token WHERE subject = ? ORDER BY created_at",
            (subject,),
        )
        return [self._token(r) for r in rows]

    def check_token(self, token: str) -> PersonalToken | None:
        """The token's record when it is genuine, unexpired and not revoked."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        rows = self._run(
            f"SELECT {self._TOKEN_COLUMNS}, secret_sha256 FROM chat_token WHERE id = ?",
            (token_id,),
        )
        if not rows or not hmac.compare_digest(rows[0][-1], digest(secret)):
            return None
        record = self._token(rows[0][:-1])
        if record.revoked_at is not None or record.expires_at < time.time():
            return None
        return record

    def revoke_token(self, subject: str, token_id: str) -> bool:
        with self._connect() as conn:
            cur = conn.execute(
                self._sql(
                    "UPDATE chat_token SET revoked_at = ? WHERE id = ? AND subject = ? "
                    "AND revoked_at IS NULL"
                ),
                (time.time(), token_id, subject),
            )
            return bool(cur.rowcount)

    # -- users as last seen with a provider token -----------------------------------------
    def remember_user(self, user: KnownUser) -> None:
        with self._connect() as conn:
            ph = self._ph
            conn.execute(f"DELETE FROM chat_user WHERE subject = {ph}", (user.subject,))
            conn.execute(
                f"INSERT INTO chat_user (subject, name, groups_json, roles_json, seen_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph})",
                (
                    user.subject,
                    user.name,
                    json.dumps(sorted(user.groups)),
                    json.dumps(sorted(user.roles)),
                    time.time(),
                ),
            )

    def known_user(self, subject: str) -> KnownUser | None:
        rows = self._run(
            "SELECT subject, name, groups_json, roles_json FROM chat_user WHERE subject = ?",
            (subject,),
        )
        if not rows:
            return None
        subject, name, groups, roles = rows[0]
        return KnownUser(subject, name, frozenset(json.loads(groups)), frozenset(json.loads(roles)))

    # -- grants ----------------------------------------------------------------------------
    def grants(self, kb: str) -> list[Grant]:
        rows = self._run(
            "SELECT kb, kind, principal, role FROM chat_grant WHERE kb = ? "
            "ORDER BY kind, principal",
            (kb,),
        )
        return [Grant(kb, kind, p, KbRole[role]) for kb, kind, p, role in rows]

    def all_grants(self) -> list[Grant]:
        rows = self._run("SELECT kb, kind, principal, role FROM chat_grant")
        return [Grant(kb, kind, p, KbRole[role]) for kb, kind, p, role in rows]

    def set_grant(self, grant: Grant, granted_by: str) -> None:
        with self._connect() as conn:
            ph = self._ph
            key = (grant.kb, grant.kind, grant.principal)
            conn.execute(
                f"DELETE FROM chat_grant WHERE kb = {ph} AND kind = {ph} AND principal = {ph}", key
            )
            conn.execute(
                f"INSERT INTO chat_grant (kb, kind, principal, role, granted_by, granted_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph})",
                (*key, grant.role.name, granted_by, time.time()),
            )

    def remove_grant(self, kb: str, kind: str, principal: str) -> bool:
        with self._connect() as conn:
            ph = self._ph
            cur = conn.execute(
                f"DELETE FROM chat_grant WHERE kb = {ph} AND kind = {ph} AND principal = {ph}",
                (kb, kind, principal),
            )
            return bool(cur.rowcount)

    def forget_kb(self, kb: str) -> None:
        self._run("DELETE FROM chat_grant WHERE kb = ?", (kb,))

    # -- audit log -------------------------------------------------------------------------
    def audit(self, actor: str, via: str, action: str, kb: str | None, detail: Any) -> None:
        self._run(
            "INSERT INTO chat_audit (id, at, actor, via, action, kb, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, time.time(), actor, via, action, kb, json.dumps(detail)),
        )

    def audit_log(self, limit: int, kb: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE kb = ? ", (kb,)) if kb is not None else ("", ())
        rows = self._run(
            "SELECT at, actor, via, action, kb, detail FROM chat_audit "
            f"{where}ORDER BY at DESC LIMIT {int(limit)}",
            params,
        )
        return [
            {"at": at, "actor": a, "via": v, "action": act, "knowledge_base": k, **_d(d)}
            for at, a, v, act, k, d in rows
        ]


def _d(detail: str) -> dict[str, Any]:
    value = json.loads(detail)
    return {"detail": value}
