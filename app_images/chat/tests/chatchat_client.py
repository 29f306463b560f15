"""How Langchain-Chatchat 0.2's web UI (webui_pages/utils.py ApiRequest) talks to the API.

The stream parsing mirrors its `_httpx_stream2generator`: each chunk of `iter_text(None)` is one
server-sent event, `data: {json}` followed by the separator, read as `json.loads(chunk[6:-2])`;
a chunk that is not an event is read as JSON (an error envelope). `stream_json` additionally
insists on HTTP 200; `events` takes the answer as 0.2's client does, whatever the status.

Every public method of 0.2.10's `ApiRequest` has a method of the same name here that sends the
same path and body (defaults from 0.2.10's `configs/*.example`) and reads the answer the same
way (`_get_response_value`: the JSON, or a value picked from it, or the response itself).
The methods that predate that rule keep their older, test-friendly signatures.
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

    # -- 0.2's generator and response helpers --------------------------------------------
    def events(self, url: str, data: Any, **kw: Any) -> list[Any]:
        """`_httpx_stream2generator(self.post(url, json=data, stream=True), as_json=True)`."""
        out: list[Any] = []
        with self.http.stream("POST", url, json=data, **kw) as r:
            for chunk in r.iter_text(None):
                if not chunk:
                    continue
                if chunk.startswith("data: "):
                    out.append(json.loads(chunk[6:-2]))
                elif chunk.startswith(":"):
                    continue
                else:
                    out.append(json.loads(chunk))
        return out

    @staticmethod
    def to_json(r: httpx.Response) -> Any:
        try:
            return r.json()
        except Exception as e:  # noqa: BLE001 - as 0.2's to_json
            return {"code": 500, "msg": "API未能返回正确的JSON。" + str(e), "data": None}

    # -- server ---------------------------------------------------------------------------
    def get_server_configs(self) -> dict:
        return self.to_json(self.http.post("/server/configs"))

    def list_search_engines(self) -> list[str]:
        # 0.2.10 defines it twice; the later one (`r.get("data", {})`) is the one that counts.
        return self.to_json(self.http.post("/server/list_search_engines")).get("data", {})

    def get_prompt_template(self, type: str = "llm_chat", name: str = "default") -> str:  # noqa: A002
        r = self.http.post("/server/get_prompt_template", json={"type": type, "name": name})
        return r.text

    # -- chat -----------------------------------------------------------------------------
    def agent_chat(self, query: str, history=None, stream: bool = True, **kw) -> list[Any]:
        return self.events(
            "/chat/agent_chat",
            {
                "query": query,
                "history": history or [],
                "stream": stream,
                "model_name": kw.get("model", "chatglm3-6b"),
                "temperature": kw.get("temperature", 0.7),
                "max_tokens": kw.get("max_tokens"),
                "prompt_name": kw.get("prompt_name", "default"),
            },
        )

    def search_engine_chat(
        self, query: str, search_engine_name: str, top_k: int = 3, stream: bool = True, **kw
    ) -> list[Any]:
        return self.events(
            "/chat/search_engine_chat",
            {
                "query": query,
                "search_engine_name": search_engine_name,
                "top_k": top_k,
                "history": kw.get("history", []),
                "stream": stream,
                "model_name": kw.get("model", "chatglm3-6b"),
                "temperature": kw.get("temperature", 0.7),
                "max_tokens": kw.get("max_tokens"),
                "prompt_name": kw.get("prompt_name", "default"),
                "split_result": kw.get("split_result", False),
            },
        )

    def upload_temp_docs(
        self,
        files: list[tuple[str, bytes]],
        knowledge_id: str | None = None,
        chunk_size: int = 250,
        chunk_overlap: int = 50,
        zh_title_enhance: bool = False,
    ) -> dict:
        data = {
            "knowledge_id": knowledge_id,
            "chunk_size": chunk_size,
            "chunk_overlap": chunk_overlap,
            "zh_title_enhance": zh_title_enhance,
        }
        r = self.http.post(
            "/knowledge_base/upload_temp_docs",
            data=data,
            files=[("files", (fname, content)) for fname, content in files],
        )
        return self.to_json(r)

    def file_chat(self, query: str, knowledge_id: str, stream: bool = True, **kw) -> list[Any]:
        return self.events(
            "/chat/file_chat",
            {
                "query": query,
                "knowledge_id": knowledge_id,
                "top_k": kw.get("top_k", 3),
                "score_threshold": kw.get("score_threshold", 1.0),
                "history": kw.get("history", []),
                "stream": stream,
                "model_name": kw.get("model", "chatglm3-6b"),
                "temperature": kw.get("temperature", 0.7),
                "max_tokens": kw.get("max_tokens"),
                "prompt_name": kw.get("prompt_name", "default"),
            },
        )

    def chat_feedback(self, message_id: str, score: int, reason: str = "") -> httpx.Response:
        return self.http.post(
            "/chat/feedback", json={"message_id": message_id, "score": score, "reason": reason}
        )

    # -- knowledge bases ------------------------------------------------------------------
    def update_docs_by_id(self, knowledge_base_name: str, docs: dict) -> httpx.Response:
        return self.http.post(
            "/knowledge_base/update_docs_by_id",
            json={"knowledge_base_name": knowledge_base_name, "docs": docs},
        )

    def update_kb_info(self, knowledge_base_name: str, kb_info: str) -> dict:
        r = self.http.post(
            "/knowledge_base/update_info",
            json={"knowledge_base_name": knowledge_base_name, "kb_info": kb_info},
        )
        return self.to_json(r)

    def update_kb_docs(
        self,
        knowledge_base_name: str,
        file_names: list[str],
        override_custom_docs: bool = False,
        chunk_size: int = 250,
        chunk_overlap: int = 50,
        zh_title_enhance: bool = False,
        docs: dict | None = None,
        not_refresh_vs_cache: bool = False,
    ) -> dict:
        data = {
            "knowledge_base_name": knowledge_base_name,
            "file_names": file_names,
            "override_custom_docs": override_custom_docs,
            "chunk_size": chunk_size,
            "chunk_overlap": chunk_overlap,
            "zh_title_enhance": zh_title_enhance,
            "docs": json.dumps(docs or {}, ensure_ascii=False),  # 0.2 sends a JSON string
            "not_refresh_vs_cache": not_refresh_vs_cache,
        }
        return self.to_json(self.http.post("/knowledge_base/update_docs", json=data))

    def recreate_vector_store(self, knowledge_base_name: str, **kw) -> list[Any]:
        return self.events(
            "/knowledge_base/recreate_vector_store",
            {
                "knowledge_base_name": knowledge_base_name,
                "allow_empty_kb": kw.get("allow_empty_kb", True),
                "vs_type": kw.get("vs_type", "faiss"),
                "embed_model": kw.get("embed_model", "bge-large-zh-v1.5"),
                "chunk_size": kw.get("chunk_size", 250),
                "chunk_overlap": kw.get("chunk_overlap", 50),
                "zh_title_enhance": kw.get("zh_title_enhance", False),
            },
            timeout=None,
        )

    # -- llm models -----------------------------------------------------------------------
    def list_running_models(self, controller_address: str | None = None) -> Any:
        r = self.http.post(
            "/llm_model/list_running_models", json={"controller_address": controller_address}
        )
        return self.to_json(r).get("data", [])

    def get_default_llm_model(
        self, local_first: bool = True, llm_models: tuple[str, ...] = ("chatglm3-6b",)
    ) -> tuple[str, bool]:
        """0.2's logic: a configured model that runs, else the first running one."""
        running = self.list_running_models()
        if not running:
            return "", False
        model = ""
        for m in llm_models:
            if m not in running:
                continue
            if local_first and running[m].get("online_api"):
                continue
            model = m
            break
        if not model:
            model = list(running)[0]
        return model, not running[model].get("online_api")

    def list_config_models(self, types: list[str] | None = None) -> dict:
        r = self.http.post(
            "/llm_model/list_config_models", json={"types": types or ["local", "online"]}
        )
        return self.to_json(r).get("data", {})

    def get_model_config(self, model_name: str | None = None) -> dict:
        r = self.http.post("/llm_model/get_model_config", json={"model_name": model_name})
        return self.to_json(r).get("data", {})

    def stop_llm_model(self, model_name: str, controller_address: str | None = None) -> dict:
        r = self.http.post(
            "/llm_model/stop",
            json={"model_name": model_name, "controller_address": controller_address},
        )
        return self.to_json(r)

    def change_llm_model(
        self,
        model_name: str,
        new_model_name: str,
        controller_address: str | None = None,
        config_check: bool = True,
    ) -> dict:
        """0.2's client checks first and posts only a switch it thinks possible; with
        `config_check=False` it posts regardless (what a client without the checks does)."""
        if not model_name or not new_model_name:
            return {"code": 500, "msg": "未指定模型名称"}
        if config_check:
            running = self.list_running_models()
            if new_model_name == model_name or new_model_name in running:
                return {"code": 200, "msg": "无需切换"}
            if model_name not in running:
                return {"code": 500, "msg": f"指定的模型'{model_name}'没有运行。"}
            if new_model_name not in self.list_config_models().get("local", {}):
                return {"code": 500, "msg": f"要切换的模型'{new_model_name}'在configs中没有配置。"}
        r = self.http.post(
            "/llm_model/change",
            json={
                "model_name": model_name,
                "new_model_name": new_model_name,
                "controller_address": controller_address,
            },
        )
        return self.to_json(r)

    def embed_texts(
        self, texts: list[str], embed_model: str = "bge-large-zh-v1.5", to_query: bool = False
    ) -> Any:
        r = self.http.post(
            "/other/embed_texts",
            json={"texts": texts, "embed_model": embed_model, "to_query": to_query},
        )
        return self.to_json(r).get("data")

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
        self,
        name: str,
        query: str = "",
        top_k: int = 3,
        score_threshold: float = 1.0,
        file_name: str = "",
        metadata: dict | None = None,
    ) -> list[dict]:
        return self.http.post(
            "/knowledge_base/search_docs",
            json={
                "query": query,
                "knowledge_base_name": name,
                "top_k": top_k,
                "score_threshold": score_threshold,
                "file_name": file_name,
                "metadata": metadata or {},
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
