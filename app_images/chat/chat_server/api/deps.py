"""Shared dependencies, read from `app.state`: settings, the knowledge service, the llm, auth."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chat_server.errors import ServiceError
from chat_server.kb.service import KnowledgeService
from chat_server.llm_client import LLMClient
from chat_server.settings import Settings

_bearer = HTTPBearer(auto_error=False)


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


def key_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of the whole key."""
    return hmac.compare_digest(given.encode(), expected.encode())


def require_key(
    settings: Annotated[Settings, Depends(get_settings)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = settings.chat_api_key
    if expected is None:  # create_app refuses this; kept so a bad state never opens the API
        raise ServiceError(503, "CHAT_API_KEY is not configured")
    if creds is None or not key_matches(creds.credentials, expected.get_secret_value()):
        raise ServiceError(
            401,
            "missing or wrong API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[KnowledgeService, Depends(get_service)]
LLMDep = Annotated[LLMClient, Depends(get_llm)]
AUTH = [Depends(require_key)]
