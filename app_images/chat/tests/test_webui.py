"""The web UI in headless Debian Chromium: create a KB, upload with progress, chat, see sources."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from PIL import Image, ImageStat

from chat_server.webui.server import create_webui
from tests.conftest import API_KEY, AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread, free_port


def sign_in(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#login-form:visible")
    assert not page.is_visible("#kb-create")
    page.fill("#api-key", "wrong key")
    page.click("#sign-in")
    page.wait_for_selector("#login-status:has-text('wrong API key')")
    page.fill("#api-key", API_KEY)
    page.click("#sign-in")
    page.wait_for_selector("#kb-create:visible")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_webui_uploads_a_document_and_answers_with_sources(
    stack, browser_page, tmp_path, model_dir
):
    settings = make_settings(
        tmp_path / "unused", "http://127.0.0.1:1", model_dir, api_base_url=stack.url
    )
    doc = tmp_path / "volcano.txt"
    doc.write_text("Mount Fuji is a dormant stratovolcano. Its last eruption began in 1707.")
    name = new_kb_name()
    page = browser_page
    with ServerThread(create_webui(settings)) as ui:
        sign_in(page, ui.url)
        page.fill("#kb-name", name)
        page.click("#kb-create")
        page.wait_for_selector(f"#status:has-text('Created {name}')")
        page.set_input_files("#files", str(doc))
        page.click("#upload")
        page.wait_for_selector("#file-list li:has-text('volcano.txt')")
        assert page.eval_on_selector("#upload-progress", "e => e.value") == 100
        assert page.input_value("#chat-kb") == name

        page.fill("#question", "When did Mount Fuji last erupt?")
        page.click("#send")
        page.wait_for_selector(".assistant .sources .source")
        answer = page.inner_text(".assistant")
        assert "STUB ANSWER" in answer and "1707" in answer
        assert "volcano.txt" in page.inner_text(".sources")

        page.select_option("#chat-kb", "")
        page.fill("#question", "plain chat please")
        page.click("#send")
        page.wait_for_selector(".assistant >> nth=1 >> text=STUB ANSWER to: plain chat please")

        bad = tmp_path / "tool.exe"
        bad.write_bytes(b"MZ")
        page.set_input_files("#files", str(bad))
        page.click("#upload")
        page.wait_for_selector("#status:has-text('unsupported')")

        shot = Path(tmp_path / "webui.png")
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5000
    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100 and ImageStat.Stat(image).stddev[0] > 10  # not a blank page


@pytest.fixture()
def ui(stack, tmp_path, model_dir):
    settings = make_settings(
        tmp_path / "unused", "http://127.0.0.1:1", model_dir, api_base_url=stack.url
    )
    with ServerThread(create_webui(settings)) as server:
        yield server


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_sign_out_ends_the_session(ui, browser_page):
    page = browser_page
    sign_in(page, ui.url)
    cookie = next(c for c in page.context.cookies() if c["name"] == "chat_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    page.click("#sign-out")
    page.wait_for_selector("#login-status:has-text('Signed out')")
    page.reload()
    page.wait_for_selector("#login-form:visible")
    # The old cookie, replayed, is refused too: sign-out revoked it on the server.
    r = httpx.get(
        f"{ui.url}/api/knowledge_base/list_knowledge_bases",
        cookies={"chat_session": cookie["value"]},
    )
    assert r.status_code == 401


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_cross_origin_form_post_is_refused(ui, stack, browser_page):
    """A page on another loopback port (same site, so the cookie is sent) posts a multipart form."""
    name = new_kb_name()
    api = httpx.Client(base_url=stack.url, headers=AUTH)
    api.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name})
    page = browser_page
    sign_in(page, ui.url)
    evil = FastAPI()
    attack = f"""<!doctype html><html><body><script>
      const form = new FormData();
      form.append("knowledge_base_name", "{name}");
      form.append("files", new Blob(["planted by another origin"]), "planted.txt");
      fetch("{ui.url}/api/knowledge_base/upload_docs",
            {{method: "POST", mode: "no-cors", credentials: "include", body: form}})
        .then(() => document.title = "sent", () => document.title = "sent");
    </script></body></html>"""

    @evil.get("/")
    async def attack_page() -> HTMLResponse:
        return HTMLResponse(attack)

    seen: list[int] = []
    page.on("response", lambda r: seen.append(r.status) if "upload_docs" in r.url else None)
    with ServerThread(evil, free_port()) as other:
        page.goto(other.url)
        page.wait_for_function("document.title === 'sent'")
    assert seen == [403]
    files = api.get("/knowledge_base/list_files", params={"knowledge_base_name": name})
    assert files.json()["data"] == []
