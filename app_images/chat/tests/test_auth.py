"""Every route of both ports answers as the permission table in the README says.

The routes come from each app's own OpenAPI document and route table, so a route added later
(by any router) without a declared permission fails here, and one that answers without a
credential fails too. Users are real credentials: personal tokens in the real access store,
for users seen with the groups below (the identity-provider path is in test_oidc.py).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from chat_server.access.principal import PERMISSION_KEY, PERMISSIONS
from chat_server.access.store import KnownUser
from chat_server.api import DOCS_PATHS, create_app
from chat_server.llm_client import LLMClient
from chat_server.webui import server as webui
from tests.conftest import API_KEY, AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread

pytestmark = pytest.mark.parametrize("vs_type", ["faiss"])
README = Path(__file__).parent.parent / "README.md"
ROLES = ("nobody", "outsider", "reader", "editor", "owner", "admin")
# What each permission answers per role, written out here (not derived from the code):
# "ok" is a 2xx/3xx answer, a number is that status.
# Routes whose allowed callers get a deliberate refusal (0.2 features this deployment does not
# have, or does not let a caller change): that status counts as "ok" (the caller got past auth).
BY_DESIGN = {
    "/chat/agent_chat": 501,
    "/chat/search_engine_chat": 501,
    "/llm_model/stop": 409,
    "/llm_model/change": 409,
}
EXPECTED: dict[str, tuple[str | int, ...]] = {
    "public": ("ok", "ok", "ok", "ok", "ok", "ok"),
    "signed_in": (401, "ok", "ok", "ok", "ok", "ok"),
    "kb_list": (401, "ok", "ok", "ok", "ok", "ok"),
    "kb_create": (401, "ok", "ok", "ok", "ok", "ok"),
    "kb_read": (401, 404, "ok", "ok", "ok", "ok"),
    "kb_write": (401, 404, 403, "ok", "ok", "ok"),
    "kb_own": (401, 404, 403, 403, "ok", "ok"),
    "tokens": (401, 403, 403, 403, 403, 403),  # personal tokens cannot make tokens
    "admin": (401, 403, 403, 403, 403, "ok"),
}


def routes(app) -> dict[tuple[str, str], str | None]:
    """Every (method, path) with its declared permission, from the OpenAPI document and from
    the route table (routes left out of the schema too); None where a route declares none."""
    found: dict[tuple[str, str], str | None] = {}
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            found[(method.upper(), path)] = op.get(PERMISSION_KEY)
    for route in app.routes:
        if isinstance(route, APIRoute):
            declared = (route.openapi_extra or {}).get(PERMISSION_KEY)
            for m in route.methods or []:
                found[(m, route.path)] = declared
        elif isinstance(route, Route):
            for m in route.methods or []:
                if m != "HEAD":
                    found[(m, route.path)] = "docs" if route.path in DOCS_PATHS else None
    return found


@dataclass
class Caller:
    role: str
    subject: str
    headers: dict[str, str]
    token_id: str | None = None


@pytest.fixture()
def api(stack):
    app = create_app(
        stack.settings, stack.service, LLMClient(stack.settings.llm_base_url, "k", "m", 5, 1)
    )
    with ServerThread(app) as server:
        server.app = app
        server.store = app.state.authenticator.store
        yield server


def user(store, subject: str, groups: set[str], scopes=("read", "write")) -> Caller:
    store.remember_user(KnownUser(subject, subject, frozenset(groups), frozenset({"creator"})))
    token, record = store.create_token(subject, "test", frozenset(scopes), 3600)
    return Caller(subject, subject, {"Authorization": f"Bearer {token}"}, record.id)


@pytest.fixture()
def callers(api) -> dict[str, Caller]:
    s = api.store
    return {
        "nobody": Caller("nobody", "", {}),
        "outsider": user(s, "u-outsider", {"staff"}),
        "reader": user(s, "u-reader", {"staff"}),
        "editor": user(s, "u-editor", {"staff", "team-editors"}),  # editor through a group
        "owner": user(s, "u-owner", set()),
        "admin": Caller("admin", "admin", dict(AUTH)),
    }


def make_kb(api) -> str:
    """A KB with one file: u-reader reads it, the group team-editors edits it, u-owner owns it."""
    name = new_kb_name()
    http = httpx.Client(base_url=api.url, headers=AUTH, timeout=60)
    assert http.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name}
    ).is_success
    up = http.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": name},
        files=[("files", ("a.txt", b"The quick brown fox jumps over the lazy dog.", "text/plain"))],
    )
    assert up.is_success, up.text
    for kind, who, role in (
        ("user", "u-reader", "reader"),
        ("group", "team-editors", "editor"),
        ("user", "u-owner", "owner"),
    ):
        r = http.post(
            "/knowledge_base/grant_permission",
            json={"knowledge_base_name": name, "kind": kind, "principal": who, "role": role},
        )
        assert r.is_success, r.text
    return name


def sample(
    method: str, path: str, kb: str, caller: Caller, store, extra: dict | None = None
) -> dict:
    """A request that succeeds for a caller allowed to make it (httpx.request kwargs);
    `extra` holds what some routes need from the running app (`temp_id`, `embed_model`)."""
    extra = extra or {}
    user_msg = [{"role": "user", "content": "fox?"}]
    bodies = {
        "/chat/feedback": {"message_id": "m-1", "score": 80, "reason": "good"},
        "/chat/file_chat": {"query": "fox", "knowledge_id": extra.get("temp_id", "none")},
        "/knowledge_base/update_docs_by_id": {"knowledge_base_name": kb, "docs": {}},
        "/knowledge_base/update_info": {"knowledge_base_name": kb, "kb_info": "about foxes"},
        "/other/embed_texts": {"texts": ["fox"]},
        "/v1/embeddings": {"model": extra.get("embed_model", "none"), "input": "fox"},
        "/knowledge_base/create_knowledge_base": {"knowledge_base_name": new_kb_name()},
        "/knowledge_base/delete_knowledge_base": kb,
        "/knowledge_base/search_docs": {"query": "fox", "knowledge_base_name": kb},
        "/knowledge_base/delete_docs": {"knowledge_base_name": kb, "file_names": ["a.txt"]},
        "/knowledge_base/update_docs": {"knowledge_base_name": kb, "file_names": ["a.txt"]},
        "/knowledge_base/recreate_vector_store": {"knowledge_base_name": kb},
        "/knowledge_base/import_shard": {
            "knowledge_base_name": kb,
            "import_id": "auth-test",
            "shard": 0,
            "shard_count": 1,
            "phase": "start",
        },
        "/knowledge_base/grant_permission": {
            "knowledge_base_name": kb,
            "kind": "group",
            "principal": "auditors",
            "role": "reader",
        },
        "/knowledge_base/revoke_permission": {
            "knowledge_base_name": kb,
            "kind": "user",
            "principal": "u-reader",
        },
        "/chat/chat": {"query": "hi"},
        "/chat/knowledge_base_chat": {"query": "fox", "knowledge_base_name": kb},
        # Without a KB (signed_in); with one it is a KB read, checked in test_listings_...
        "/v1/chat/completions": {"model": "stub-model", "messages": user_msg},
        "/auth/tokens": {"name": "t"},
    }
    if path in ("/knowledge_base/upload_docs", "/knowledge_base/upload_temp_docs"):
        return {
            "data": {"knowledge_base_name": kb},
            "files": [("files", ("b.txt", b"A second small file about dogs.", "text/plain"))],
        }
    if path == "/auth/tokens/revoke":
        _, record = store.create_token(caller.subject or "x", "to revoke", frozenset({"read"}), 60)
        return {"json": {"id": record.id}}
    params = {"knowledge_base_name": kb}
    if path == "/knowledge_base/download_doc":
        params["file_name"] = "a.txt"
    if method == "GET":
        return {"params": params}
    return {"json": bodies.get(path, {"knowledge_base_name": kb}), "params": params}


def outcome(response: httpx.Response) -> str | int:
    if response.status_code == BY_DESIGN.get(response.request.url.path):
        return "ok"
    return "ok" if response.status_code < 400 else response.status_code


def temp_docs_id(api) -> str:
    r = httpx.post(
        api.url + "/knowledge_base/upload_temp_docs",
        headers=AUTH,
        files=[("files", ("t.txt", b"A temporary note about the fox.", "text/plain"))],
        timeout=60,
    )
    assert r.is_success, r.text
    return str(r.json()["data"]["id"])


def test_every_api_route_declares_a_known_permission(api):
    table = routes(api.app)
    assert ("POST", "/knowledge_base/delete_knowledge_base") in table and len(table) > 20
    undeclared = sorted(k for k, perm in table.items() if perm not in {*PERMISSIONS, "docs"})
    assert not undeclared, f"routes without a declared permission (declare() one): {undeclared}"


def test_every_route_answers_as_the_permission_table(api, callers):
    shared = make_kb(api)
    extra = {"temp_id": temp_docs_id(api), "embed_model": api.app.state.service.embedder.name}
    failures = []
    for (method, path), perm in sorted(routes(api.app).items()):
        if perm == "docs":
            continue
        path = re.sub(r"\{[^}]+\}", "x", path)
        expected = EXPECTED.get(perm or "admin")
        assert expected is not None, (method, path, perm)
        writes = perm in ("kb_write", "kb_own")
        for role, want in zip(ROLES, expected, strict=True):
            caller = callers[role]
            kb = make_kb(api) if writes and want == "ok" else shared
            r = httpx.request(
                method,
                api.url + path,
                headers=caller.headers,
                timeout=60,
                follow_redirects=False,
                **sample(method, path, kb, caller, api.store, extra),
            )
            if outcome(r) != want:
                failures.append(f"{method} {path} as {role}: {r.status_code} {r.text[:160]}")
            if want == 404:  # refused exactly as a missing KB is: nothing reveals it exists
                missing = httpx.request(
                    method,
                    api.url + path,
                    headers=caller.headers,
                    timeout=60,
                    **sample(method, path, "no-such-" + uuid.uuid4().hex[:6], caller, api.store),
                )
                if (missing.status_code, missing.json()["msg"].split("'")[0]) != (
                    r.status_code,
                    r.json()["msg"].split("'")[0],
                ):
                    failures.append(f"{method} {path} as {role}: differs from a missing KB")
    assert not failures, "\n".join(failures)


def test_every_api_route_refuses_a_wrong_credential(api):
    for (method, path), perm in sorted(routes(api.app).items()):
        if perm in ("public", "docs"):
            continue
        for headers in (
            {},
            {"Authorization": "Bearer " + API_KEY[:-1]},
            {"Authorization": "Bearer " + API_KEY + "x"},
            {"Authorization": "Bearer chat_pat_0123456789abcdef_forged"},
            {"Authorization": "Bearer a.b.c"},
        ):
            r = httpx.request(method, api.url + path, headers=headers, json="x")
            assert r.status_code == 401, (method, path, headers, r.text)


def test_listings_show_only_readable_knowledge_bases(api, callers):
    kb = make_kb(api)
    for role in ROLES[1:]:
        h = callers[role].headers
        listed = httpx.get(api.url + "/knowledge_base/list_knowledge_bases", headers=h).json()
        models = [m["id"] for m in httpx.get(api.url + "/v1/models", headers=h).json()["data"]]
        sees = role != "outsider"
        assert (kb in listed["data"]) is sees, role
        assert (f"kb:{kb}" in models) is sees, role
        r = httpx.post(
            api.url + "/v1/chat/completions",
            json={"model": f"kb:{kb}", "messages": [{"role": "user", "content": "fox?"}]},
            headers=h,
        )
        assert r.status_code == (200 if sees else 404), (role, r.text)


def test_a_read_scoped_token_cannot_write(api):
    kb = make_kb(api)
    owner_read_only = user(api.store, "u-owner", set(), scopes=("read",))
    h = owner_read_only.headers
    assert httpx.get(
        api.url + "/knowledge_base/list_files", params={"knowledge_base_name": kb}, headers=h
    ).is_success
    r = httpx.post(api.url + "/knowledge_base/delete_knowledge_base", json=kb, headers=h)
    assert r.status_code == 403 and "'write' scope" in r.json()["msg"]


def test_the_creator_owns_the_new_kb_and_the_audit_log_says_who(api, callers):
    owner = user(api.store, "u-maker", {"staff"})
    name = new_kb_name()
    r = httpx.post(
        api.url + "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": name},
        headers=owner.headers,
    )
    assert r.is_success, r.text
    grants = httpx.get(
        api.url + "/knowledge_base/permissions",
        params={"knowledge_base_name": name},
        headers=owner.headers,
    ).json()["data"]
    assert grants == [{"kind": "user", "principal": "u-maker", "role": "owner"}]
    r = httpx.post(
        api.url + "/knowledge_base/delete_knowledge_base", json=name, headers=owner.headers
    )
    assert r.is_success
    log = httpx.get(
        api.url + "/admin/audit_log", params={"knowledge_base_name": name}, headers=AUTH
    ).json()["data"]
    assert [(e["action"], e["actor"], e["via"]) for e in log] == [
        ("delete_knowledge_base", "u-maker", "personal_token"),
        ("create_knowledge_base", "u-maker", "personal_token"),
    ]
    # A KB made again under the same name starts without the old one's grants.
    assert httpx.post(
        api.url + "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": name},
        headers=AUTH,
    ).is_success
    assert api.store.grants(name) == []


def test_readme_permission_table_lists_every_route_with_its_permission(api):
    rows = {}
    section = README.read_text().split("## Sign-in and permissions", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        m = re.match(r"\| `(GET|POST) ([^`]+)` \| `(\w+)` \|", line)
        if m:
            rows[(m.group(1), m.group(2))] = m.group(3)
    table = {k: v for k, v in routes(api.app).items() if v != "docs"}
    assert rows == table


def test_every_webui_route_needs_a_session(stack, tmp_path, model_dir):
    settings = make_settings(tmp_path, "http://127.0.0.1:1", model_dir, api_base_url=stack.url)
    app = webui.create_webui(settings)
    table = routes(app)
    assert ("POST", "/api/{path:path}") in table
    with ServerThread(app) as server:
        for method, path in table:
            path = re.sub(r"\{[^}]+\}", "knowledge_base/list_knowledge_bases", path)
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
