"""Sign-in routes: who am I, personal API tokens, grants on knowledge bases, the audit log."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chat_server.access.principal import Grant, KbRole, declare
from chat_server.api.deps import AccessDep, PrincipalDep, ServiceDep, SettingsDep
from chat_server.api.knowledge_base import ok
from chat_server.errors import ServiceError

router = APIRouter(tags=["Access"])
RoleName = Literal["reader", "editor", "owner"]


class CreateToken(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "write"]] = Field(default=["read"], min_length=1)
    expires_in_days: int = Field(default=30, ge=1)


class RevokeToken(BaseModel):
    id: str = Field(min_length=1)


class GrantRequest(BaseModel):
    knowledge_base_name: str
    kind: Literal["user", "group"]
    principal: str = Field(min_length=1, max_length=256)
    role: RoleName


class RevokeGrant(BaseModel):
    knowledge_base_name: str
    kind: Literal["user", "group"]
    principal: str = Field(min_length=1)


@router.get("/auth/me", openapi_extra=declare("signed_in"))
async def me(principal: PrincipalDep) -> dict:
    return ok(data=principal.describe())


@router.post("/auth/tokens", openapi_extra=declare("tokens"))
async def create_token(body: CreateToken, access: AccessDep, settings: SettingsDep) -> dict:
    if body.expires_in_days > settings.personal_token_max_days:
        raise ServiceError(
            400,
            f"expires_in_days={body.expires_in_days} is over the limit of "
            f"{settings.personal_token_max_days} (PERSONAL_TOKEN_MAX_DAYS)",
        )
    p = access.principal
    token, record = await run_in_threadpool(
        access.store.create_token,
        p.subject,
        body.name,
        frozenset(body.scopes),
        body.expires_in_days * 86400.0,
    )
    await access.audit("create_token", None, token_id=record.id, scopes=sorted(record.scopes))
    return ok("token created: it is shown only now", {"token": token, **record.describe()})


@router.get("/auth/tokens", openapi_extra=declare("signed_in"))
async def list_tokens(access: AccessDep) -> dict:
    tokens = await run_in_threadpool(access.store.tokens_of, access.principal.subject)
    return ok(data=[t.describe() for t in tokens])


@router.post("/auth/tokens/revoke", openapi_extra=declare("signed_in"))
async def revoke_token(body: RevokeToken, access: AccessDep) -> dict:
    done = await run_in_threadpool(access.store.revoke_token, access.principal.subject, body.id)
    if not done:
        raise ServiceError(404, f"no live token {body.id!r} of yours")
    await access.audit("revoke_token", None, token_id=body.id)
    return ok("token revoked")


async def owned_kb(name: str, access: AccessDep, service: ServiceDep) -> str:
    kb = await access.check(name, KbRole.owner)
    found, _ = await run_in_threadpool(service.get_kb, kb)  # 404 for an admin naming none
    return found.name


@router.get("/knowledge_base/permissions", openapi_extra=declare("kb_own"))
async def list_grants(
    access: AccessDep, service: ServiceDep, knowledge_base_name: str = Query(...)
) -> dict:
    kb = await owned_kb(knowledge_base_name, access, service)
    grants = await run_in_threadpool(access.store.grants, kb)
    return ok(
        data=[{"kind": g.kind, "principal": g.principal, "role": g.role.name} for g in grants]
    )


@router.post("/knowledge_base/grant_permission", openapi_extra=declare("kb_own"))
async def grant(body: GrantRequest, access: AccessDep, service: ServiceDep) -> dict:
    kb = await owned_kb(body.knowledge_base_name, access, service)
    new = Grant(kb, body.kind, body.principal, KbRole[body.role])
    await run_in_threadpool(access.store.set_grant, new, access.principal.subject)
    await access.audit(
        "grant_permission", kb, kind=body.kind, principal=body.principal, role=body.role
    )
    return ok(f"{body.kind} {body.principal!r} is {body.role} of {kb!r}")


@router.post("/knowledge_base/revoke_permission", openapi_extra=declare("kb_own"))
async def revoke(body: RevokeGrant, access: AccessDep, service: ServiceDep) -> dict:
    kb = await owned_kb(body.knowledge_base_name, access, service)
    done = await run_in_threadpool(access.store.remove_grant, kb, body.kind, body.principal)
    if not done:
        raise ServiceError(404, f"{body.kind} {body.principal!r} has no role on {kb!r}")
    await access.audit("revoke_permission", kb, kind=body.kind, principal=body.principal)
    return ok(f"{body.kind} {body.principal!r} no longer has a role on {kb!r}")


@router.get("/admin/audit_log", openapi_extra=declare("admin"))
async def audit_log(
    access: AccessDep,
    limit: int = Query(100, ge=1, le=10_000),
    knowledge_base_name: str | None = None,
) -> dict:
    rows = await run_in_threadpool(access.store.audit_log, limit, knowledge_base_name)
    return ok(data=rows)
