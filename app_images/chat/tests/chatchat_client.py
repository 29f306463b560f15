"""How Langchain-Chatchat 0.2's web UI (webui_pages/utils.py ApiRequest) talks to the API.

The stream parsing mirrors its `_httpx_stream2generator`: each chunk of `iter_text(None)` is one
server-sent event, `data: {json}` followed by the separator, read as `json.loads(chunk[6:-2])`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class ChatchatClient:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60, headers=headers or {})

    def stream_json(self, url: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        with self.http.stream("POST", url, json=data) as r:
            assert r.status_code == 200, r.read()
            for chunk in r.iter_text(None):
                if not chunk or chunk.startswith(":"):
                    continue
                assert chunk.startswith("data: "), chunk
                events.append(json.loads(chunk[6:-2]))
        return events

    def list_knowledge_bases(self) -> list[str]:
        return self.http.get("/knowledge_base/list_knowledge_bases").json().get("data", [])

    def create_knowledge_base(self, name: str, vs_type: str, embed_model: str) -> dict:
        return self.http.post(
            "/knowledge_base/create_knowledge_base",
            json={
                "knowledge_base_name": name,
                "vector_store_type": vs_type,
                "embed_model": embed_model,
            },
        ).json()

    def delete_knowledge_base(self, name: str) -> dict:
        return self.http.post("/knowledge_base/delete_knowledge_base", json=f"{name}").json()

    def list_kb_docs(self, name: str) -> list[str]:
        r = self.http.get("/knowledge_base/list_files", params={"knowledge_base_name": name})
        return r.json().get("data", [])

    def upload_kb_docs(self, files: list[tuple[str, bytes]], name: str, **kw) -> httpx.Response:
        data = {
            "knowledge_base_name": name,
            "override": kw.get("override", False),
            "to_vector_store": True,
            "chunk_size": kw.get("chunk_size", 250),
            "chunk_overlap": kw.get("chunk_overlap", 50),
            "zh_title_enhance": kw.get("zh_title_enhance", False),
            "docs": json.dumps({}),
            "not_refresh_vs_cache": False,
        }
        return self.http.post(
            "/knowledge_base/upload_docs",
            data=data,
            files=[("files", (fname, content)) for fname, content in files],
        )

    def search_kb_docs(
        self, name: str, query: str, top_k: int = 3, score_threshold: float = 1.0
    ) -> list[dict]:
        return self.http.post(
            "/knowledge_base/search_docs",
            json={
                "query": query,
                "knowledge_base_name": name,
                "top_k": top_k,
                "score_threshold": score_threshold,
                "file_name": "",
                "metadata": {},
            },
        ).json()

    def delete_kb_docs(self, name: str, file_names: list[str], delete_content=False) -> dict:
        return self.http.post(
            "/knowledge_base/delete_docs",
            json={
                "knowledge_base_name": name,
                "file_names": file_names,
                "delete_content": delete_content,
                "not_refresh_vs_cache": False,
            },
        ).json()

    def knowledge_base_chat(self, query: str, name: str, stream: bool = True, **kw) -> list[dict]:
        return self.stream_json(
            "/chat/knowledge_base_chat",
            {
                "query": query,
                "knowledge_base_name": name,
                "top_k": kw.get("top_k", 3),
                "score_threshold": kw.get("score_threshold", 1.0),
                "history": kw.get("history", []),
                "stream": stream,
                "model_name": "stub-model",
                "temperature": 0.7,
                "max_tokens": None,
                "prompt_name": "default",
            },
        )

    def chat_chat(self, query: str, stream: bool = True, history=None) -> list[dict]:
        return self.stream_json(
            "/chat/chat",
            {
                "query": query,
                "conversation_id": None,
                "history_len": -1,
                "history": history or [],
                "stream": stream,
                "model_name": "stub-model",
                "temperature": 0.7,
                "max_tokens": None,
                "prompt_name": "default",
            },
        )
