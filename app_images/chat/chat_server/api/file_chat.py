"""Chatchat 0.2's file chat: `/knowledge_base/upload_temp_docs` then `/chat/file_chat`.

Uploaded files are parsed and split as an upload to a knowledge base is, embedded with the
deployment's model and held in memory (`chat_server.kb.temp_docs`) under the id the upload
answers; nothing is written to the KB volume. A file that cannot be read is listed in
`failed_files` (as 0.2 did) while the others are kept.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from chat_server.access.principal import declare
from chat_server.api.chat import ChatRequest, answer_from
from chat_server.api.deps import AUTH, LLMDep, ServiceDep, SettingsDep
from chat_server.api.knowledge_base import ok, read_uploads
from chat_server.errors import ServiceError
from chat_server.kb.service import SplitParams
from chat_server.kb.temp_docs import TempChunk, TempDocs
from chat_server.settings import Settings

router = APIRouter(dependencies=AUTH, tags=["File chat"])
_DEFAULTS = Settings.model_fields


def get_temp_docs(request: Request) -> TempDocs:
    temp: TempDocs = request.app.state.temp_docs
    return temp


TempDocsDep = Annotated[TempDocs, Depends(get_temp_docs)]


class FileChatRequest(ChatRequest):
    knowledge_id: str = Field(min_length=1, description="the id upload_temp_docs answered")
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)


@router.post("/knowledge_base/upload_temp_docs", openapi_extra=declare("signed_in"))
async def upload_temp_docs(
    service: ServiceDep,
    settings: SettingsDep,
    temp: TempDocsDep,
    files: list[UploadFile] = File(..., description="documents to chat with"),
    prev_id: str | None = Form(None, description="a temp id to replace (0.2's server field)"),
    knowledge_id: str | None = Form(None, description="the same, as 0.2's ApiRequest sends it"),
    chunk_size: int = Form(_DEFAULTS["chunk_size"].default),
    chunk_overlap: int = Form(_DEFAULTS["chunk_overlap"].default),
    zh_title_enhance: bool = Form(False),
) -> dict:
    params = SplitParams(chunk_size, chunk_overlap, zh_title_enhance).validate()
    incoming = await read_uploads(files, settings)

    def parse() -> tuple[list[TempChunk], list[dict[str, str]]]:
        chunks: list[TempChunk] = []
        failed: list[dict[str, str]] = []
        for f in incoming:
            try:
                chunks += [TempChunk(f.name, c) for c in service.split_file(f, params)]
            except ServiceError as exc:
                failed.append({f.name: exc.message})
        return chunks, failed

    chunks, failed = await run_in_threadpool(parse)
    vectors = await run_in_threadpool(service.embedder.encode, [c.content for c in chunks])
    kb_id = temp.put(prev_id or knowledge_id or None, chunks, vectors)
    return ok(data={"id": kb_id, "failed_files": failed})


@router.post("/chat/file_chat", openapi_extra=declare("signed_in"))
async def file_chat(
    body: FileChatRequest, service: ServiceDep, llm: LLMDep, temp: TempDocsDep
) -> Response:
    vector: np.ndarray = (await run_in_threadpool(service.embedder.encode, [body.query]))[0]
    found = temp.search(body.knowledge_id, vector, body.top_k, body.score_threshold)
    if found is None:
        raise ServiceError(
            404,
            f"未找到临时知识库 {body.knowledge_id}，请先上传文件 (temporary knowledge base "
            f"{body.knowledge_id!r} is not held by this server: it expired, or the server "
            "restarted; upload the files again)",
        )
    docs = [f"出处 [{n}] [{c.file_name}] \n\n{c.content}\n\n" for n, (c, _) in enumerate(found, 1)]
    return await answer_from(llm, body, [c.content for c, _ in found], docs)
