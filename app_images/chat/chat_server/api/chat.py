"""Chat routes: `/chat/chat` and `/chat/knowledge_base_chat` in Chatchat 0.2's stream format.

A fault of the llm mid-stream ends the stream with `{"code": <status>, "msg": ...}`, the event
0.2's `check_error_msg` shows as an error; before the first byte it is an HTTP error.
"""

from __future__ import annotations

import uuid
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chat_server import prompts
from chat_server.access.principal import KbRole, declare
from chat_server.api.answers import AnswerShape, Event, LLMCall, answer
from chat_server.api.deps import AccessDep, LLMDep, ServiceDep
from chat_server.api.retrieval_fields import RetrievalFields
from chat_server.errors import ServiceError
from chat_server.kb.service import SearchHit
from chat_server.llm_client import LLMClient

router = APIRouter(prefix="/chat", tags=["Chat"])
NO_SOURCES = "<span style='color:red'>未找到相关文档,该回答为大模型自身能力解答！</span>"


class HistoryItem(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


class ChatRequest(BaseModel):
    query: str = Field(min_length=1)
    conversation_id: str | None = None
    history_len: int = -1
    history: list[HistoryItem] = Field(default_factory=list)
    stream: bool = False
    model_name: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    prompt_name: str = "default"

    def llm_call(self, prompt: str) -> LLMCall:
        n = self.history_len
        items = self.history if n < 0 else self.history[-n:] if n else []
        messages = [{"role": h.role, "content": h.content} for h in items]
        messages.append({"role": "user", "content": prompt})
        return LLMCall(messages, self.model_name, self.temperature, self.max_tokens)


class KnowledgeBaseChatRequest(ChatRequest, RetrievalFields):
    knowledge_base_name: str
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)
    local_doc_url: bool = False


def fault_event(exc: ServiceError) -> Event:
    return {"code": exc.status, "msg": exc.message}


def source_references(
    request: Request,
    kb: str,
    hits: list[SearchHit],
    imported: dict[str, tuple[str, str]] | None = None,
) -> list[str]:
    """0.2's `docs`: `出处 [n] [file](download link)`, then the chunk. A bulk-imported file
    (`imported`: name -> import id, path in its source) has no original to download: it is
    named with where its original is, not linked to a 404."""
    refs = []
    for n, hit in enumerate(hits, start=1):
        origin = (imported or {}).get(hit.file_name)
        if origin is not None:
            source = f"{hit.file_name} (bulk-imported: {origin[0]!r}, {origin[1]!r})"
        else:
            url = f"{request.base_url}knowledge_base/download_doc?" + urlencode(
                {"knowledge_base_name": kb, "file_name": hit.file_name}
            )
            source = f"[{hit.file_name}]({url})"
        refs.append(f"出处 [{n}] {source} \n\n{hit.content}\n\n")
    return refs


@router.post("/chat", openapi_extra=declare("signed_in"))
async def chat(body: ChatRequest, llm: LLMDep) -> Response:
    message_id = body.conversation_id or uuid.uuid4().hex

    def event(text: str) -> Event:
        return {"text": text, "message_id": message_id}

    call = body.llm_call(prompts.llm_prompt(body.prompt_name, body.query))
    return await answer(llm, call, body.stream, AnswerShape(event, event, fault_event))


@router.post("/knowledge_base_chat", openapi_extra=declare("kb_read"))
async def knowledge_base_chat(
    body: KnowledgeBaseChatRequest,
    request: Request,
    service: ServiceDep,
    llm: LLMDep,
    access: AccessDep,
) -> Response:
    kb = await access.check(body.knowledge_base_name, KbRole.reader)
    hits = await run_in_threadpool(
        service.search,
        kb,
        body.query,
        body.top_k,
        body.score_threshold,
        body.search_mode,
        body.rerank,
    )
    names = sorted({h.file_name for h in hits})
    imported = await run_in_threadpool(service.imported_files, kb, names) if names else {}
    docs = source_references(request, body.knowledge_base_name, hits, imported)
    return await answer_from(llm, body, [h.content for h in hits], docs)


async def answer_from(
    llm: LLMClient, body: ChatRequest, contents: list[str], docs: list[str]
) -> Response:
    """0.2's knowledge-base answer (knowledge base or file chat): the knowledge-base prompt over
    the found `contents` ("empty" when nothing was found), tokens as `{"answer"}`, then `docs`."""
    context = "\n".join(contents)
    prompt_name = body.prompt_name if contents else "empty"
    call = body.llm_call(prompts.kb_prompt(prompt_name, context, body.query))
    docs = docs or [NO_SOURCES]
    shape = AnswerShape(
        piece=lambda token: {"answer": token},
        whole=lambda text: {"answer": text, "docs": docs},
        fault=fault_event,
        after=[{"docs": docs}],
    )
    return await answer(llm, call, body.stream, shape)
