"""The OpenAI face on `/v1`, driven by the official `openai` client against the API started as
its image starts it (`python -m chat_server.api`, a process of its own, configured by env).

Every `/v1` error has OpenAI's shape `{"error": {message, type, param, code}}`, including the
framework's 404/405/422, the key check's 401 and the body limit's 413, while 0.2's routes keep
their `{code, msg, data}` envelope.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import API_KEY, AUTH
from tests.stub_llm import free_port

JSON_LIMIT = 50_000


@pytest.fixture(scope="module")
def api(stub_llm, model_dir, tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "LLM_HOST": stub_llm.url,
        "LLM_MODEL": "stub-model",
        "EMBEDDING_MODEL": str(model_dir),
        "KB_ROOT": str(tmp_path_factory.mktemp("kb")),
        "CHAT_API_KEY": API_KEY,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "MAX_JSON_BODY_BYTES": str(JSON_LIMIT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat_server.api"], cwd=Path(__file__).parent.parent, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None, f"the API exited with {proc.returncode}"
            assert time.monotonic() < deadline, "the API did not start"
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture()
def oa(api) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api}/v1", api_key=API_KEY, max_retries=0)


def words(text: str) -> int:
    return len(text.split())  # the stub llm counts a whitespace-split word as a token


def test_content_parts_and_the_llms_own_usage(oa):
    parts = [{"type": "text", "text": "What do"}, {"type": "text", "text": "pandas eat?"}]
    reply = oa.chat.completions.create(
        model="stub-model", messages=[{"role": "user", "content": parts}]
    )
    text = reply.choices[0].message.content
    assert text.startswith("STUB ANSWER") and "What do\npandas eat?" in text  # parts joined
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == words(text)
    assert reply.usage.total_tokens == 4 + words(text)

    with pytest.raises(openai.BadRequestError) as caught:
        oa.chat.completions.create(
            model="stub-model",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ],
        )
    assert "'image_url'" in caught.value.body["message"]


def test_stream_usage_only_when_asked(oa):
    messages = [{"role": "user", "content": "say something"}]
    chunks = list(
        oa.chat.completions.create(
            model="stub-model",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == 2 and last.usage.completion_tokens == words(text)
    assert all(c.usage is None for c in chunks[:-1])

    plain = list(oa.chat.completions.create(model="stub-model", messages=messages, stream=True))
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain)


def test_embeddings_float_and_base64_for_a_string_or_a_list(oa, embedder):
    texts = ["大熊猫吃竹子", "rockets burn hydrogen"]
    expected = embedder.encode(texts)
    one = oa.embeddings.create(model=embedder.name, input=texts[0], encoding_format="float")
    assert len(one.data) == 1 and np.allclose(one.data[0].embedding, expected[0], atol=1e-5)
    assert one.usage.prompt_tokens == sum(embedder.token_counts(texts[:1])) > 0

    both = oa.embeddings.create(model=embedder.name, input=texts, encoding_format="base64")
    raw = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in both.data]
    assert [d.index for d in both.data] == [0, 1] and np.allclose(raw, expected, atol=1e-5)
    # Without a format the client asks for base64 and decodes it itself.
    default = oa.embeddings.create(model=embedder.name, input=texts)
    assert np.allclose([d.embedding for d in default.data], expected, atol=1e-5)

    with pytest.raises(openai.NotFoundError) as caught:
        oa.embeddings.create(model="text-embedding-3-small", input="x")
    assert embedder.name in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        oa.embeddings.create(model=embedder.name, input=["ok", ""])
    # A text over the model's window is refused, not silently cut.
    long = "panda " * (embedder.max_tokens or 0)
    with pytest.raises(openai.BadRequestError) as caught:
        oa.embeddings.create(model=embedder.name, input=["ok", long])
    assert "input 1 has" in caught.value.body["message"]
    assert str(embedder.max_tokens) in caught.value.body["message"]


def assert_openai_error(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == kind and body["error"]["code"] == status
    assert body["error"]["message"]
    return body["error"]


def test_every_v1_error_has_openais_shape_and_0_2_keeps_its_envelope(api, oa):
    assert_openai_error(httpx.get(f"{api}/v1/nope", headers=AUTH), 404, "not_found_error")
    assert_openai_error(httpx.post(f"{api}/v1/models", headers=AUTH), 405, "invalid_request_error")
    error = assert_openai_error(
        httpx.post(f"{api}/v1/chat/completions", headers=AUTH, json={"model": "m"}),
        422,
        "invalid_request_error",
    )
    assert error["param"] == "messages"
    assert_openai_error(httpx.get(f"{api}/v1/models"), 401, "authentication_error")
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * JSON_LIMIT}]}
    error = assert_openai_error(
        httpx.post(f"{api}/v1/chat/completions", headers=AUTH, json=big),
        413,
        "request_too_large",
    )
    assert str(JSON_LIMIT) in error["message"]

    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(base_url=f"{api}/v1", api_key="wrong", max_retries=0).models.list()
    assert caught.value.body["type"] == "authentication_error"
    with pytest.raises(openai.UnprocessableEntityError):
        oa.chat.completions.create(model="stub-model", messages=[])

    # The same faults on 0.2's routes answer its envelope.
    for r, status in (
        (httpx.get(f"{api}/knowledge_base/nope", headers=AUTH), 404),
        (httpx.post(f"{api}/chat/chat", headers=AUTH, json={}), 422),
        (httpx.get(f"{api}/knowledge_base/list_knowledge_bases"), 401),
        (httpx.post(f"{api}/chat/chat", headers=AUTH, json={"query": "x" * JSON_LIMIT}), 413),
    ):
        assert r.status_code == status and r.json()["code"] == status, r.text
        assert "error" not in r.json() and r.json()["msg"]
