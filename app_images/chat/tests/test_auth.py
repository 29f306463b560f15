"""No route of either port reveals or changes data without a credential.

The routes come from each app's own route table, so a new route without auth fails here.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from chat_server.api import PUBLIC_PATHS, create_app
from chat_server.llm_client import LLMClient
from chat_server.webui import server as webui
from tests.conftest import API_KEY, make_settings
from tests.stub_llm import ServerThread

pytestmark = pytest.mark.parametrize("vs_type", ["faiss"])


def routes(app) -> list[tuple[str, str]]:
    """Every (method, path): top-level routes plus the OpenAPI table (included routers)."""
    found = {
        (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
    }
    for route in app.routes:
        if isinstance(route, APIRoute | Route):
            found |= {(m, route.path) for m in route.methods or [] if m != "HEAD"}
    return sorted(
        (m, re.sub(r"\{[^}]+\}", "knowledge_base/list_knowledge_bases", p)) for m, p in found
    )


def test_every_api_route_needs_the_key(stack, model_dir):
    app = create_app(
        stack.settings, stack.service, LLMClient(stack.settings.llm_base_url, "k", "m", 5, 1)
    )
    table = routes(app)
    assert ("POST", "/knowledge_base/delete_knowledge_base") in table and len(table) > 14
    with ServerThread(app) as server:
        for method, path in table:
            if path in PUBLIC_PATHS:
                continue
            for headers in (
                {},
                {"Authorization": "Bearer " + API_KEY[:-1]},
                {"Authorization": "Bearer " + API_KEY + "x"},
            ):
                r = httpx.request(method, server.url + path, headers=headers, json="x")
                assert r.status_code == 401, (method, path, headers, r.text)


def test_every_webui_route_needs_a_session(stack, tmp_path, model_dir):
    settings = make_settings(tmp_path, "http://127.0.0.1:1", model_dir, api_base_url=stack.url)
    app = webui.create_webui(settings)
    table = routes(app)
    assert ("POST", "/api/knowledge_base/list_knowledge_bases") in table
    with ServerThread(app) as server:
        for method, path in table:
            if path in webui.PUBLIC_PATHS:
                continue
            r = httpx.request(method, server.url + path, cookies={"chat_session": "1.2.3"})
            assert r.status_code == 401, (method, path, r.text)
        wrong = httpx.post(server.url + "/login", json={"api_key": API_KEY + "\n"})
        assert wrong.status_code == 401  # the whole key, nothing around it


def test_service_refuses_to_start_without_a_key(stack, tmp_path, model_dir):
    settings = make_settings(tmp_path, "http://127.0.0.1:1", model_dir, chat_api_key=None)
    with pytest.raises(ValueError, match="CHAT_API_KEY"):
        create_app(settings, stack.service)
    with pytest.raises(ValueError, match="CHAT_API_KEY"):
        webui.create_webui(settings)
