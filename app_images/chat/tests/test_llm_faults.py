"""A misbehaving llm (a real stub process) shows up as an error, never as a complete answer.

Chatchat 0.2's web UI reads `{"code": <not 200>, "msg": ...}` events as errors
(`webui_pages/utils.py: check_error_msg`); OpenAI clients raise on an `{"error": ...}` event.
"""

from __future__ import annotations

import json
import signal

import httpx
import openai
import pytest

from chat_server.api import create_app
from chat_server.llm_client import LLMClient
from tests.chatchat_client import ChatchatClient
from tests.conftest import API_KEY, AUTH, StubLLMProcess, new_kb_name
from tests.stub_llm import ServerThread

pytestmark = pytest.mark.parametrize("vs_type", ["faiss"])
STREAM_FAULTS = ["drop", "no-finish", "error-event", "bad-json", "empty-choices"]
REPLY_FAULTS = ["bad-json", "html", "wrong-shape", "empty-choices"]


@pytest.fixture()
def api(stack, faulty_llm):
    llm = LLMClient(f"{faulty_llm.url}/v1", "k", "stub-model", 10, 1)
    with ServerThread(create_app(stack.settings, stack.service, llm)) as server:
        yield server


def check_error_msg(event: dict) -> str:
    """Chatchat 0.2's own test for an error event."""
    if "code" in event and event["code"] != 200:
        return event["msg"]
    return ""


def chat_body(fault: str, stream: bool) -> dict:
    return {
        "query": "tell me a long story please",
        "model_name": f"fault:{fault}",
        "stream": stream,
    }


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_broken_stream_ends_with_an_error_event(api, fault):
    events = ChatchatClient(api.url, AUTH).stream_json("/chat/chat", chat_body(fault, True))
    *pieces, last = events
    assert check_error_msg(last) and last["code"] == 502, events
    assert "llm service" in last["msg"]
    assert all(not check_error_msg(e) for e in pieces)  # the error is the last event


def test_cut_off_kb_chat_sends_no_sources(api, stack):
    client = ChatchatClient(api.url, AUTH)
    name = new_kb_name()
    client.create_knowledge_base(name, "faiss", "m")
    client.upload_kb_docs([("otter.txt", b"Sea otters hold hands while they sleep.")], name)
    events = client.stream_json(
        "/chat/knowledge_base_chat",
        {
            "query": "otters",
            "knowledge_base_name": name,
            "model_name": "fault:drop",
            "stream": True,
        },
    )
    assert [e for e in events if "answer" in e]  # the partial answer was shown as it came
    assert check_error_msg(events[-1]) and "broke off" in events[-1]["msg"]
    assert not any("docs" in e for e in events)  # a cut-off answer is not dressed as complete


@pytest.mark.parametrize("fault", REPLY_FAULTS)
@pytest.mark.parametrize("path", ["/chat/chat", "/chat/knowledge_base_chat"])
def test_unusable_reply_is_502_in_the_envelope(api, fault, path):
    body = chat_body(fault, False)
    if path.endswith("knowledge_base_chat"):
        client = ChatchatClient(api.url, AUTH)
        body["knowledge_base_name"] = name = new_kb_name()
        client.create_knowledge_base(name, "faiss", "m")
    r = httpx.post(f"{api.url}{path}", json=body, headers=AUTH)
    assert r.status_code == 502, r.text
    assert r.json()["code"] == 502 and "llm service" in r.json()["msg"]


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_openai_client_raises_on_a_broken_stream(api, fault):
    oa = openai.OpenAI(base_url=f"{api.url}/v1", api_key=API_KEY, max_retries=0)
    stream = oa.chat.completions.create(
        model=f"fault:{fault}", stream=True, messages=[{"role": "user", "content": "a story"}]
    )
    with pytest.raises(openai.APIError, match="llm service"):
        for _ in stream:
            pass


@pytest.mark.parametrize("fault", REPLY_FAULTS)
def test_openai_client_gets_502_for_an_unusable_reply(api, fault):
    oa = openai.OpenAI(base_url=f"{api.url}/v1", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        oa.chat.completions.create(
            model=f"fault:{fault}", messages=[{"role": "user", "content": "a story"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"  # openai hands over body["error"]
    assert "llm service" in caught.value.body["message"]


def test_llm_killed_mid_answer_is_an_error_event(stack):
    with StubLLMProcess() as victim:
        llm = LLMClient(f"{victim.url}/v1", "k", "stub-model", 10, 1)
        with ServerThread(create_app(stack.settings, stack.service, llm)) as server:
            events = []
            with httpx.stream(
                "POST", f"{server.url}/chat/chat", json=chat_body("hang", True), headers=AUTH
            ) as r:
                for chunk in r.iter_text(None):
                    if not chunk.startswith("data: "):
                        continue
                    events.append(json.loads(chunk[6:-2]))
                    if len(events) == 2:  # the llm is mid-answer now
                        victim.proc.send_signal(signal.SIGKILL)
            assert victim.proc.wait(timeout=10) == -signal.SIGKILL
    assert [e["text"] for e in events[:2]] == ["STUB ANSWER to: ", "tell me a long s"]
    assert events[-1]["code"] == 502 and "broke off" in events[-1]["msg"]
    assert len(events) == 3
