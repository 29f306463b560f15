"""The rest of 0.2's `/chat/*`: feedback (stored), and the two modes this deployment lacks.

Search-engine and agent chat answer a clear error in the envelope (HTTP 501), which 0.2's
`check_error_msg` shows as such.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chat_server.access.principal import declare
from chat_server.api.deps import AUTH, ServiceDep
from chat_server.api.knowledge_base import ok
from chat_server.errors import ServiceError

router = APIRouter(prefix="/chat", dependencies=AUTH, tags=["Chat"])


class Feedback(BaseModel):
    # 0.2's limits: a message id of at most 32 characters, a score out of 100.
    message_id: str = Field(min_length=1, max_length=32)
    score: int = Field(default=0, ge=0, le=100)
    reason: str = Field(default="", max_length=10_000)


def not_available(mode: str, why: str) -> ServiceError:
    return ServiceError(501, f"{mode} is not available in this deployment: {why}")


@router.post("/feedback", openapi_extra=declare("signed_in"))
async def chat_feedback(body: Feedback, service: ServiceDep) -> dict[str, Any]:
    await run_in_threadpool(service.record_feedback, body.message_id, body.score, body.reason)
    return ok(f"已反馈聊天记录 {body.message_id}")


@router.post("/search_engine_chat", openapi_extra=declare("signed_in"))
async def search_engine_chat(body: Any = Body(None)) -> None:
    raise not_available(
        "search_engine_chat", "it has no search engine (it reaches no internet service)"
    )


@router.post("/agent_chat", openapi_extra=declare("signed_in"))
async def agent_chat(body: Any = Body(None)) -> None:
    raise not_available(
        "agent_chat", "it has no agent tools; use /chat/chat or /chat/knowledge_base_chat"
    )
