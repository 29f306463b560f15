"""The web UI in headless Debian Chromium: create a KB, upload with progress, chat, see sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from chat_server.webui.server import create_webui
from tests.conftest import make_settings, new_kb_name
from tests.stub_llm import ServerThread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def browser_page(tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (ci.sh installs the Debian package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 800},
        )
        page = context.new_page()
        yield page
        context.close()


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
        page.goto(ui.url)
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
