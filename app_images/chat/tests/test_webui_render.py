"""The web UI's Markdown renderer and sanitiser (`chat_server.webui.render`), as pure functions."""

from __future__ import annotations

import pytest

from chat_server.webui.render import download_link, render_markdown


@pytest.mark.parametrize(
    "text",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "<svg onload=alert(1)><circle/></svg>",
        "<iframe src=//example.com></iframe>",
        "<p style='background:url(javascript:alert(1))' onclick=alert(1)>x</p>",
        "<form action=/logout><button>go</button></form>",
        "![pic](http://example.com/tracker.png)",
    ],
)
def test_active_markup_is_removed(text):
    html = render_markdown(text)
    for bad in ("<img", "<script", "alert(1)<", "<svg", "<iframe", "onclick", "style=", "<form"):
        assert bad not in html, (text, html)


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        '<a href=" JaVaScRiPt:alert(1)">x</a>',
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
    ],
)
def test_links_keep_only_http_https_and_relative_targets(link):
    html = render_markdown(link)
    assert "href" not in html, html


def test_markdown_renders_and_links_get_noopener():
    html = render_markdown(
        "**b** `c` [ok](https://example.com/a?b=1) [rel](/x)\n\n| a |\n|---|\n| 1 |"
    )
    assert "<strong>b</strong>" in html and "<code>c</code>" in html and "<td>1</td>" in html
    assert '<a href="https://example.com/a?b=1" rel="noopener noreferrer">ok</a>' in html
    assert '<a href="/x" rel="noopener noreferrer">rel</a>' in html


def test_an_api_download_link_points_at_the_web_ui():
    source = (
        "出处 [1] [产品 手册.txt](http://chat-api:7861/knowledge_base/download_doc?"
        "knowledge_base_name=%E4%BA%A7%E5%93%81&file_name=%E4%BA%A7+%E5%93%81.txt) \n\ntext"
    )
    html = render_markdown(source)
    assert "7861" not in html
    assert (
        'href="/ui/download?knowledge_base_name=%E4%BA%A7%E5%93%81&amp;'
        'file_name=%E4%BA%A7+%E5%93%81.txt"'
    ) in html
    assert download_link("https://example.com/page") is None
    # Only the two fields travel: no `preview`, nothing else a link might add.
    assert download_link("http://h/knowledge_base/download_doc?file_name=a&preview=true&x=1") == (
        "/ui/download?file_name=a"
    )
