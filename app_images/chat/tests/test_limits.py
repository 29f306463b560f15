"""Bounded work per request: bodies over their cap are refused (413) before they are buffered."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chat_server.api import create_app
from chat_server.llm_client import LLMClient
from tests.conftest import AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread

pytestmark = pytest.mark.parametrize("vs_type", ["faiss"])
CAP = 300_000


@pytest.fixture()
def api(stack, model_dir):
    settings = make_settings(
        stack.settings.kb_root,
        stack.settings.llm_base_url[:-3],
        model_dir,
        max_request_bytes=CAP,
        max_upload_bytes=200_000,
        max_json_body_bytes=10_000,
        max_upload_files=3,
    )
    llm = LLMClient(settings.llm_base_url, "k", "stub-model", 10, 1)
    with ServerThread(create_app(settings, stack.service, llm)) as server:
        http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
        name = new_kb_name()
        http.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name})
        yield http, name


def assert_too_large(r: httpx.Response, needle: str) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["code"] == 413 and needle in r.json()["msg"]


def test_declared_length_over_the_cap_is_refused(api):
    http, name = api
    files = [("files", (f"f{i}.txt", b"word " * 36_000)) for i in range(2)]
    r = http.post("/knowledge_base/upload_docs", data={"knowledge_base_name": name}, files=files)
    assert_too_large(r, f"limit of {CAP} bytes")
    assert (
        http.get("/knowledge_base/list_files", params={"knowledge_base_name": name}).json()["data"]
        == []
    )


def test_chunked_body_without_length_is_counted(api):
    http, name = api
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="knowledge_base_name"\r\n\r\n'
            f"{name}\r\n"
        ).encode()
        for i in range(2):  # two files of 160 KB (each under its cap) in 4 KB chunks, no length
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="big{i}.txt"\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            for _ in range(40):
                yield b"x" * 4096
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    r = http.post(
        "/knowledge_base/upload_docs",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in r.request.headers
    assert_too_large(r, f"limit of {CAP} bytes")


def test_json_body_has_its_own_smaller_cap(api):
    http, _ = api
    r = http.post("/chat/chat", json={"query": "q" * 20_000})
    assert_too_large(r, "limit of 10000 bytes")
    r = http.post("/v1/chat/completions", json={"model": "m", "messages": [], "x": "y" * 20_000})
    assert r.status_code == 413 and "10000" in r.json()["error"]["message"]


def test_too_many_files_in_one_request(api):
    http, name = api
    files = [("files", (f"f{i}.txt", b"some text")) for i in range(4)]
    r = http.post("/knowledge_base/upload_docs", data={"knowledge_base_name": name}, files=files)
    assert_too_large(r, "4 files in one request; the limit is 3")
