"""The web UI in headless Debian Chromium, against the real API and the stub llm.

Covers what Chatchat 0.2's Streamlit UI did: the three dialogue modes with streamed, rendered
answers and per-mode history, the served model, knowledge-base management (a Chinese name,
files, the chunk editor, rebuild with progress), Chinese and English, sanitised Markdown, source
links that download through the web UI's port, and the "model starting" retry. Screenshots go
to the test's tmp dir, and with `--webui-screenshots DIR` also into DIR (docs/screenshots).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from PIL import Image, ImageStat

from chat_server.api import create_app
from chat_server.kb.service import KnowledgeService
from chat_server.llm_client import LLMClient
from chat_server.webui.server import MAX_RENDER_CHARS, create_webui
from tests.conftest import API_KEY, AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread, create_stub_llm, free_port

KB = "产品手册"  # a Chinese name, as Chatchat's users give them
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
SHOT_LIMIT = 150_000  # bytes per PNG kept in the repository


def sign_in(page, url: str, lang: str | None = None) -> None:
    page.goto(url)
    page.wait_for_selector("#login-form:visible")
    if lang:
        page.select_option("#login-lang", lang)
    assert not page.is_visible("#kb-create")
    page.fill("#api-key", "wrong key")
    page.click("#sign-in")
    page.wait_for_selector("#login-status:has-text('wrong API key')")
    page.fill("#api-key", API_KEY)
    page.click("#sign-in")
    page.wait_for_selector("#app-main:visible")
    page.wait_for_selector("#model-name:has-text('stub')")


def shot(page, request, tmp_path: Path, name: str) -> Path:
    """A screenshot of the viewport in the tmp dir (checked not blank), and a small copy in
    the `--webui-screenshots` folder when one is given."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    image = Image.open(path).convert("L")
    low, high = image.getextrema()
    assert high - low > 100 and ImageStat.Stat(image).stddev[0] > 10, name  # not a blank page
    folder = request.config.getoption("--webui-screenshots")
    if folder:
        out = Path(folder) / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        small = Image.open(path).convert("RGB").quantize(colors=48)
        small.save(out, optimize=True)
        assert out.stat().st_size < SHOT_LIMIT, (out, out.stat().st_size)
    return path


def wait_i18n(page, selector: str, key: str) -> None:
    """Wait for a status line to show one message, whichever language it is in."""
    page.wait_for_selector(f"{selector}[data-i18n={key}]")


def ask(page, question: str, nth: int) -> str:
    """Send a question in the current mode; the text of the `nth` answer (0-based, this mode)."""
    page.fill("#question", question)
    page.click("#send")
    answer = f".conversation:visible .assistant >> nth={nth}"
    page.wait_for_selector("#send:visible")  # the stream has ended
    return page.inner_text(answer)


def create_kb_in_ui(page, name: str) -> None:
    page.click("#nav-kb")
    page.click("#kb-new summary")
    page.fill("#kb-name", name)
    page.fill("#kb-info", "产品说明与常见问题")
    page.click("#kb-create")
    wait_i18n(page, "#kb-status", "kbCreated")
    assert name in page.inner_text("#kb-status")
    assert page.input_value("#kb-select") == name


@pytest.fixture()
def api(stack):
    with httpx.Client(base_url=stack.url, headers=AUTH, timeout=60) as client:
        yield client


def upload(api: httpx.Client, kb: str, files: dict[str, str], **form) -> None:
    api.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": kb})
    r = api.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb, "override": "true", **form},
        files=[("files", (name, text.encode())) for name, text in files.items()],
    )
    assert r.status_code == 200 and not r.json()["data"]["failed_files"], r.text


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_each_dialogue_mode_answers_with_its_own_history(
    ui, stack, stub_llm, browser_page, tmp_path, request
):
    doc = tmp_path / "volcano.txt"
    doc.write_text("Mount Fuji is a dormant stratovolcano. Its last eruption began in 1707.")
    page = browser_page
    sign_in(page, ui.url)
    shot(page, request, tmp_path, "chat-empty")
    create_kb_in_ui(page, KB)
    page.set_input_files("#files", str(doc))
    page.click("#upload")
    page.wait_for_selector("#file-list tr[data-file='volcano.txt']")
    assert page.eval_on_selector("#upload-progress", "e => e.value") == 100
    shot(page, request, tmp_path, "kb-management")

    page.click("#nav-chat")
    page.select_option("#mode", "kb")
    assert page.input_value("#chat-kb") == KB
    page.fill("#top-k", "2")
    answer = ask(page, "When did Mount Fuji last erupt?", 0)
    assert "STUB ANSWER" in answer and "1707" in answer
    sources = page.locator(".conversation:visible .sources .source")
    assert sources.count() == 1 and "volcano.txt" in sources.inner_text()
    sent = stub_llm.app.state.requests[-1]
    assert "1707" in sent["messages"][-1]["content"]  # the KB's chunk reached the prompt
    shot(page, request, tmp_path, "chat-knowledge-base")

    page.select_option("#mode", "llm")
    assert not page.is_visible("#conv-kb") and page.locator("#conv-llm .msg").count() == 0
    assert "STUB ANSWER to: plain chat please" in ask(page, "plain chat please", 0)
    assert "STUB ANSWER to: and again" in ask(page, "and again", 1)
    history = stub_llm.app.state.requests[-1]["messages"][:-1]
    # The LLM mode's own history went along, none of the knowledge-base conversation.
    assert [m["content"] for m in history] == [
        "plain chat please",
        "STUB ANSWER to: plain chat please",
    ]
    page.select_option("#mode", "kb")  # the KB conversation is still there
    assert page.locator("#conv-kb .assistant").count() == 1
    page.click("#clear-history")
    assert page.locator("#conv-kb .msg").count() == 0

    page.click("#nav-kb")
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ")
    page.set_input_files("#files", str(bad))
    page.click("#upload")
    wait_i18n(page, "#kb-status", "uploadFailed")
    assert "unsupported" in page.inner_text("#kb-status")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_file_chat_answers_from_temporary_files(ui, browser_page, tmp_path, request, stack):
    notes = tmp_path / "会议纪要.md"
    notes.write_text("# 会议纪要\n\nThe launch of product Kestrel moved to March 14.")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    page = browser_page
    sign_in(page, ui.url, "en")
    page.select_option("#mode", "file")
    page.fill("#question", "too early")
    page.click("#send")
    wait_i18n(page, "#chat-status", "tempNeeded")
    page.set_input_files("#temp-files", [str(notes), str(bad)])
    page.click("#temp-upload")
    wait_i18n(page, "#temp-status", "tempFailed")
    assert "broken.pdf" in page.inner_text("#temp-status")
    page.set_input_files("#temp-files", str(notes))
    page.click("#temp-upload")
    wait_i18n(page, "#temp-status", "tempUploaded")
    answer = ask(page, "When is the Kestrel launch?", 0)
    assert "March 14" in answer
    assert "会议纪要.md" in page.inner_text(".conversation:visible .sources")
    # nothing of it became a knowledge base
    assert (
        httpx.get(f"{stack.url}/knowledge_base/list_knowledge_bases", headers=AUTH).json()["data"]
        == []
    )
    shot(page, request, tmp_path, "chat-file")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_a_source_link_downloads_through_the_web_ui_port(ui, api, browser_page, tmp_path):
    text = "产品保修期为两年。The warranty lasts two years."
    upload(api, KB, {"保修 说明.txt": text})
    page = browser_page
    sign_in(page, ui.url)
    page.select_option("#mode", "kb")
    page.select_option("#chat-kb", KB)
    ask(page, "保修期多久？", 0)
    link = page.locator(".conversation:visible .sources a").first
    href = link.get_attribute("href")
    assert href.startswith("/ui/download?"), href  # this port, not the API's 7861
    assert ":7861" not in page.inner_html(".conversation:visible .sources")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "保修 说明.txt"
    assert Path(download.path()).read_text() == text
    assert download.url.startswith(ui.url + "/ui/download")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_chunk_edit_is_saved_and_shown_after_reload(ui, api, browser_page, tmp_path, request):
    paragraphs = [f"第{n}段：产品型号 K{n} 的说明。" + "细节。" * 30 for n in range(1, 4)]
    upload(api, KB, {"手册.txt": "\n\n".join(paragraphs)}, chunk_size="120", chunk_overlap="0")
    page = browser_page
    sign_in(page, ui.url)
    page.click("#nav-kb")
    page.select_option("#kb-select", KB)
    page.click("#file-list tr[data-file='手册.txt'] button.edit")
    page.wait_for_selector("#chunks textarea")
    areas = page.locator("#chunks textarea")
    assert areas.count() >= 2
    assert "K1" in areas.nth(0).input_value()
    shot(page, request, tmp_path, "kb-chunk-editor")
    page.click("#chunks-save")
    wait_i18n(page, "#kb-status", "chunksUnchanged")
    areas.nth(0).fill("已修改：K1 型号停产，请改用 K9。")
    page.click("#chunks-save")
    wait_i18n(page, "#kb-status", "chunksSaved")

    page.reload()
    page.wait_for_selector("#app-main:visible")
    page.click("#nav-kb")
    page.wait_for_selector(f"#kb-select option[value='{KB}']", state="attached")
    page.select_option("#kb-select", KB)
    page.click("#file-list tr[data-file='手册.txt'] button.edit")
    page.wait_for_selector("#chunks textarea")
    texts = [a.input_value() for a in page.locator("#chunks textarea").all()]
    assert texts[0] == "已修改：K1 型号停产，请改用 K9。"
    assert any("K2" in t for t in texts[1:])
    found = api.post(
        "/knowledge_base/search_docs",
        json={"knowledge_base_name": KB, "query": "K9 停产", "top_k": 1, "score_threshold": 2},
    ).json()
    assert found[0]["page_content"] == texts[0]  # re-embedded: search finds the new text


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_rebuild_shows_progress_to_100(ui, api, browser_page, tmp_path, request):
    files = {f"doc{n}.txt": f"Document number {n} talks about topic {n}." for n in range(4)}
    upload(api, KB, files)
    page = browser_page
    sign_in(page, ui.url, "en")
    page.click("#nav-kb")
    page.select_option("#kb-select", KB)
    # Record every value the bar is given and every progress line, as they happen.
    page.evaluate(
        """() => { window.bar = []; window.lines = [];
        const bar = document.getElementById('rebuild-progress');
        const proto = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value');
        Object.defineProperty(bar, 'value', { get() { return proto.get.call(this); },
          set(v) { window.bar.push(v); proto.set.call(this, v); } });
        new MutationObserver((records) => { for (const r of records)
            for (const n of r.addedNodes) window.lines.push(n.textContent); })
          .observe(document.getElementById('rebuild-status'), {childList: true}); }"""
    )
    page.click("#kb-rebuild")
    wait_i18n(page, "#rebuild-status", "rebuilt")
    assert page.eval_on_selector("#rebuild-progress", "e => e.value") == 100
    assert page.evaluate("window.bar") == [0, 25, 50, 75, 100, 100]
    lines = page.evaluate("window.lines")
    assert [line.split(":")[0] for line in lines[:-1]] == [
        f"Rebuilding ({n} / 4)" for n in range(1, 5)
    ]
    assert lines[-1] == "Vector store rebuilt"
    shot(page, request, tmp_path, "kb-rebuilt")
    hits = api.post(
        "/knowledge_base/search_docs",
        json={"knowledge_base_name": KB, "query": "topic 2", "top_k": 4, "score_threshold": 2},
    ).json()
    assert {h["metadata"]["source"] for h in hits} == set(files)


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_knowledge_base_with_a_chinese_name_is_created_listed_and_deleted(ui, api, browser_page):
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, ui.url)
    create_kb_in_ui(page, KB)
    assert KB in api.get("/knowledge_base/list_knowledge_bases").json()["data"]
    assert page.locator("#chat-kb option", has_text=KB).count() == 1
    page.click("#kb-delete")
    wait_i18n(page, "#kb-status", "kbDeleted")
    assert KB not in api.get("/knowledge_base/list_knowledge_bases").json()["data"]
    assert page.locator(f"#kb-select option[value='{KB}']").count() == 0


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_files_are_listed_downloaded_and_deleted_per_knowledge_base(ui, api, browser_page):
    upload(api, KB, {"a.txt": "alpha text", "b.txt": "beta text"})
    upload(api, "other kb", {"c.txt": "gamma text"})
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, ui.url)
    page.click("#nav-kb")
    page.select_option("#kb-select", KB)
    page.wait_for_selector("#file-list tr[data-file='b.txt']")
    assert page.locator("#file-list tr[data-file]").count() == 2
    with page.expect_download() as info:
        page.click("#file-list tr[data-file='a.txt'] a.download")
    assert Path(info.value.path()).read_text() == "alpha text"
    page.click("#file-list tr[data-file='a.txt'] button.delete")
    wait_i18n(page, "#kb-status", "fileDeleted")
    page.wait_for_selector("#file-list tr[data-file='a.txt']", state="detached")
    files = api.get("/knowledge_base/list_files", params={"knowledge_base_name": KB})
    assert files.json()["data"] == ["b.txt"]
    page.select_option("#kb-select", "other kb")
    page.wait_for_selector("#file-list tr[data-file='c.txt']")
    assert page.locator("#file-list tr[data-file]").count() == 1


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_a_large_knowledge_base_is_shown_a_page_at_a_time_and_filtered_by_name(
    ui, api, browser_page, request, tmp_path
):
    names = [f"doc{i:03d}.txt" for i in range(201)]  # pages of 100: the third holds one file
    for start in range(0, len(names), 30):  # the upload limit is 32 files a request
        upload(
            api, KB, {n: f"Note {n} on topic {i}." for i, n in enumerate(names[start : start + 30])}
        )
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, ui.url, "en")
    page.click("#nav-kb")
    page.select_option("#kb-select", KB)

    def shown() -> list[str]:
        return page.eval_on_selector_all(
            "#file-list tr[data-file]", "rows => rows.map(r => r.dataset.file)"
        )

    page.wait_for_selector("#files-range:has-text('1–100 of 201')")
    assert shown() == names[:100]
    assert page.is_disabled("#files-prev") and page.is_enabled("#files-next")
    page.click("#files-next")
    page.wait_for_selector("#files-range:has-text('101–200 of 201')")
    assert shown() == names[100:200]
    page.locator("#file-pager").scroll_into_view_if_needed()
    shot(page, request, tmp_path, "kb-file-pages")
    page.click("#files-next")
    page.wait_for_selector("#files-range:has-text('201–201 of 201')")
    assert shown() == ["doc200.txt"] and page.is_disabled("#files-next")

    # the last page's only file deleted: the page before is shown, of one file fewer
    page.click("#file-list tr[data-file='doc200.txt'] button.delete")
    page.wait_for_selector("#files-range:has-text('101–200 of 200')")
    assert shown() == names[100:200]

    page.fill("#file-filter", "DOC15")  # any case; the server filters, across every page
    page.wait_for_selector("#file-list tr[data-file='doc150.txt']")
    page.wait_for_selector("#file-list tr[data-file='doc100.txt']", state="detached")
    assert shown() == [f"doc15{i}.txt" for i in range(10)]
    assert page.is_hidden("#file-pager")  # ten files: one page
    page.fill("#file-filter", "no such name")
    page.wait_for_selector("#file-list td[data-i18n=noMatchingFiles]")
    assert shown() == []
    page.select_option("#lang", "zh")
    assert "no such name" in page.inner_text("#file-list")  # the message, in Chinese
    page.fill("#file-filter", "")
    page.wait_for_selector("#files-range:has-text('第 1–100 个，共 200 个')")
    assert shown() == names[:100]


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_bulk_imported_files_show_their_import_not_a_broken_download(
    ui, api, browser_page, stack, tmp_path, model_dir
):
    from tests.test_bulk_import import Worker

    upload(api, KB, {"a.txt": "alpha text"})
    source = tmp_path / "nas"
    (source / "manuals").mkdir(parents=True)
    (source / "manuals" / "lamp.txt").write_text("The lamp needs a 12 V supply.")
    env = {"CHAT_API_URL": stack.url, "DEFAULT_VS_TYPE": "faiss"}
    code, _ = Worker(tmp_path, model_dir, KB, source, "nas-2026", **env).finish()
    assert code == 0
    page = browser_page
    sign_in(page, ui.url)
    page.click("#nav-kb")
    page.select_option("#kb-select", KB)
    page.wait_for_selector("#file-list tr[data-file='a.txt'] a.download")
    row = page.locator("#file-list tr[data-file]").filter(has_not_text="a.txt")
    assert row.count() == 1
    label = row.locator("span.imported")
    assert label.get_attribute("data-i18n") == "importedFrom"
    assert "nas-2026" in label.inner_text() and label.get_attribute("title") == "manuals/lamp.txt"
    assert row.locator("a.download").count() == 0  # its original is not on the KB volume


def visible_text(page) -> str:
    return page.evaluate("document.body.innerText")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_chinese_by_default_english_on_switch_and_remembered(ui, browser_page, tmp_path, request):
    page = browser_page
    page.goto(ui.url)
    page.wait_for_selector("#login-form:visible")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("#sign-in") == "登录"
    # Every message has both languages, and every key the page names exists.
    missing = page.evaluate(
        """() => {
        const bad = Object.entries(MESSAGES)
          .filter(([k, v]) => !v.zh || !v.en || v.zh === v.en).map(([k]) => k);
        for (const el of document.querySelectorAll('[data-i18n],[data-i18n-placeholder]')) {
          const key = el.dataset.i18n || el.dataset.i18nPlaceholder;
          if (!(key in MESSAGES)) bad.push(key);
        }
        return bad; }"""
    )
    assert missing == []
    shot(page, request, tmp_path, "sign-in")
    sign_in(page, ui.url, "en")
    assert page.get_attribute("html", "lang") == "en"

    def no_chinese_anywhere() -> None:
        for nav in ("#nav-chat", "#nav-kb"):
            page.click(nav)
            for mode in ("llm", "kb", "file") if nav == "#nav-chat" else ("",):
                if mode:
                    page.select_option("#mode", mode)
                # The switch names each language in itself: "中文" stays "中文".
                text = visible_text(page).replace("中文", "")
                assert not CJK.search(text), (nav, mode, CJK.findall(text))

    no_chinese_anywhere()
    page.click("#nav-chat")
    shot(page, request, tmp_path, "chat-english")
    page.reload()  # remembered
    page.wait_for_selector("#app-main:visible")
    assert page.inner_text("#nav-chat") == "Dialogue"
    no_chinese_anywhere()
    page.select_option("#lang", "zh")
    page.click("#nav-chat")
    assert page.inner_text("#nav-chat") == "对话"
    assert page.inner_text("#signed-in-as") == "当前用户：admin"  # dynamic lines follow too
    page.select_option("#mode", "kb")
    assert "Dialogue" not in visible_text(page) and "知识库问答" in visible_text(page)


XSS_PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=\"window.pwned='img'\">",
    "<script>window.pwned='script'</script>",
    "[link](javascript:window.pwned='md-link')",
    "<a href=\"javascript:window.pwned='a-href'\">raw link</a>",
    '<a href="JaVaScRiPt:alert(2)">mixed case</a>',
    "<svg onload=alert(3)></svg>",
    '<iframe src="javascript:alert(4)"></iframe>',
    "<b onmouseover=alert(5)>hover</b>",
    "**bold survives**",
]


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_answers_and_sources_are_sanitised_markdown(ui, api, browser_page, tmp_path, request):
    """The stub llm echoes the question, so each payload comes back in the answer; a KB file
    holds them too, so they come back in the sources."""
    payload = "\n\n".join(XSS_PAYLOADS)
    upload(api, KB, {"evil.md": "# Evil\n\n" + payload})
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, ui.url, "en")
    question = " ".join(XSS_PAYLOADS)  # one line: the question box is a one-line input
    answer = ask(page, question, 0)
    assert "STUB ANSWER" in answer
    assert page.inner_text("#conv-llm .user") == question  # the question, shown as typed text
    page.select_option("#mode", "kb")
    page.select_option("#chat-kb", KB)
    ask(page, question, 0)
    for conversation in ("#conv-llm", "#conv-kb"):
        page.select_option("#mode", conversation.removeprefix("#conv-"))
        box = page.locator(f"{conversation} .assistant")
        assert box.locator("strong", has_text="bold survives").count() >= 1  # Markdown renders
        for tag in ("img", "script", "svg", "iframe", "[onerror]", "[onload]", "[onmouseover]"):
            assert box.locator(tag).count() == 0, (conversation, tag)
        for link in box.locator("a").all():
            href = link.get_attribute("href")
            assert href is None or href.startswith(("/ui/download?", "http")), href
            assert link.get_attribute("rel") == "noopener noreferrer"
            link.click()
        box.locator("b, strong").first.hover()
    page.wait_for_timeout(300)  # any handler that was going to run has run
    assert dialogs == []
    assert page.evaluate("window.pwned") is None
    assert page.locator("#conv-kb .sources .source").count() >= 1
    shot(page, request, tmp_path, "chat-sanitised")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_render_and_download_keep_the_same_origin_rules(ui, api):
    upload(api, KB, {"page.html": "<html><body><script>alert(1)</script>hi</body></html>"})
    with httpx.Client(base_url=ui.url, timeout=30) as browser:
        csrf = browser.post("/login", json={"api_key": API_KEY}).json()["csrf"]
        body = {"text": "**x**"}
        assert browser.post("/ui/render", json=body).status_code == 403  # no CSRF token
        evil = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
        assert browser.post("/ui/render", json=body, headers=evil).status_code == 403
        ok = browser.post("/ui/render", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and ok.json()["html"] == "<p><strong>x</strong></p>\n"
        long = {"text": "x" * (MAX_RENDER_CHARS + 1)}
        too_long = browser.post("/ui/render", json=long, headers={"X-CSRF-Token": csrf})
        assert too_long.status_code == 422
        huge = browser.post(
            "/ui/render",
            content=b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}',
            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        # An uploaded HTML page never runs as a page of the web UI's origin.
        got = browser.get(
            "/ui/download", params={"knowledge_base_name": KB, "file_name": "page.html"}
        )
        assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
        assert "sandbox" in got.headers["content-security-policy"]
        preview = browser.get(
            "/api/knowledge_base/download_doc",
            params={"knowledge_base_name": KB, "file_name": "page.html", "preview": "true"},
        )
        assert "sandbox" in preview.headers["content-security-policy"]
        assert preview.headers["x-content-type-options"] == "nosniff"
        page = browser.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (
        httpx.get(
            f"{ui.url}/ui/download", params={"knowledge_base_name": KB, "file_name": "page.html"}
        ).status_code
        == 401
    )


@pytest.fixture()
def cold_llm(tmp_path, embedder, model_dir):
    """The API and the web UI with the llm scaled to zero: nothing listens on its port until
    the test starts the stub llm there."""
    port = free_port()
    settings = make_settings(tmp_path / "kb", f"http://127.0.0.1:{port}", model_dir)
    service = KnowledgeService(embedder, settings.kb_root, None, "faiss")
    llm = LLMClient(settings.llm_base_url, "k", "stub-model", 10, 1)
    with ServerThread(create_app(settings, service, llm)) as api:
        ui_settings = make_settings(
            tmp_path / "unused", "http://127.0.0.1:1", model_dir, api_base_url=api.url
        )
        with ServerThread(create_webui(ui_settings)) as ui:
            ui.llm_port = port
            yield ui
    service.close()


def test_model_starting_is_shown_and_the_question_retried(
    cold_llm, browser_page, tmp_path, request
):
    page = browser_page
    page.goto(cold_llm.url)
    page.select_option("#login-lang", "en")
    page.fill("#api-key", API_KEY)
    page.click("#sign-in")
    wait_i18n(page, "#model-name", "modelStartingShort")
    assert re.fullmatch(r"model starting, retrying in \d+ s", page.inner_text("#model-name"))
    page.fill("#question", "are you up?")
    page.click("#send")
    notice = "#conv-llm .assistant .notice"
    wait_i18n(page, notice, "modelStarting")
    text = page.inner_text(notice)
    assert re.fullmatch(r"The model is starting: retrying automatically in \d+ s…", text), text
    page.select_option("#lang", "zh")
    assert re.fullmatch(r"模型正在启动，\d+ 秒后自动重试…", page.inner_text(notice))
    page.select_option("#lang", "en")
    page.click("#stop")  # the user gives up waiting
    wait_i18n(page, notice, "stopped")
    page.wait_for_selector("#send:visible")

    page.fill("#question", "are you up now?")
    page.click("#send")
    second = "#conv-llm .assistant >> nth=1"
    wait_i18n(page, f"{second} >> .notice", "modelStarting")
    shot(page, request, tmp_path, "chat-model-starting")
    with ServerThread(create_stub_llm(), cold_llm.llm_port):  # the llm has started
        page.wait_for_selector(
            "#conv-llm .answer:has-text('STUB ANSWER to: are you up now?')", timeout=60_000
        )
        assert not page.locator(second).locator(".notice").is_visible()  # no error, no break
        page.wait_for_selector("#model-name:has-text('stub')", timeout=60_000)
    assert page.locator("#conv-llm .assistant").count() == 2
    assert page.inner_text("#conv-llm .assistant >> nth=0 >> .answer") == ""  # never answered


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
    wait_i18n(page, "#login-status", "signedOut")
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
