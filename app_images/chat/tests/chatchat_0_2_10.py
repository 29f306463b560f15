"""Langchain-Chatchat 0.2.10's `webui_pages/utils.py` `ApiRequest`: its public methods and the
request each one sends, read from the source at the commit below (tag v0.2.10).

`TRANSPORT` are its HTTP helpers; every other method is in `CALLS`: (HTTP method, path) of what
it sends. `get_default_llm_model` only calls `list_running_models`; `change_llm_model` posts
only after its own checks (see tests/chatchat_client.py).
"""

from __future__ import annotations

SOURCE = "github.com/chatchat-space/Langchain-Chatchat webui_pages/utils.py"
COMMIT = "9c525b7fa5b99437cf4d5167a7d062ef778a94b1"  # tag v0.2.10

TRANSPORT = ("client", "get", "post", "delete")

CALLS: dict[str, tuple[str, str]] = {
    "get_server_configs": ("POST", "/server/configs"),
    "list_search_engines": ("POST", "/server/list_search_engines"),
    "get_prompt_template": ("POST", "/server/get_prompt_template"),
    "chat_chat": ("POST", "/chat/chat"),
    "agent_chat": ("POST", "/chat/agent_chat"),
    "knowledge_base_chat": ("POST", "/chat/knowledge_base_chat"),
    "upload_temp_docs": ("POST", "/knowledge_base/upload_temp_docs"),
    "file_chat": ("POST", "/chat/file_chat"),
    "search_engine_chat": ("POST", "/chat/search_engine_chat"),
    "list_knowledge_bases": ("GET", "/knowledge_base/list_knowledge_bases"),
    "create_knowledge_base": ("POST", "/knowledge_base/create_knowledge_base"),
    "delete_knowledge_base": ("POST", "/knowledge_base/delete_knowledge_base"),
    "list_kb_docs": ("GET", "/knowledge_base/list_files"),
    "search_kb_docs": ("POST", "/knowledge_base/search_docs"),
    "update_docs_by_id": ("POST", "/knowledge_base/update_docs_by_id"),
    "upload_kb_docs": ("POST", "/knowledge_base/upload_docs"),
    "delete_kb_docs": ("POST", "/knowledge_base/delete_docs"),
    "update_kb_info": ("POST", "/knowledge_base/update_info"),
    "update_kb_docs": ("POST", "/knowledge_base/update_docs"),
    "recreate_vector_store": ("POST", "/knowledge_base/recreate_vector_store"),
    "list_running_models": ("POST", "/llm_model/list_running_models"),
    "get_default_llm_model": ("POST", "/llm_model/list_running_models"),
    "list_config_models": ("POST", "/llm_model/list_config_models"),
    "get_model_config": ("POST", "/llm_model/get_model_config"),
    "stop_llm_model": ("POST", "/llm_model/stop"),
    "change_llm_model": ("POST", "/llm_model/change"),
    "embed_texts": ("POST", "/other/embed_texts"),
    "chat_feedback": ("POST", "/chat/feedback"),
}
