"""Answers as safe HTML: Markdown rendered by markdown-it-py, then cleaned by nh3 (ammonia).

The browser only ever receives what the allow-list below lets through: no scripts, no event
handlers, no images, no styles; links keep only http(s) and relative targets and get
`rel="noopener noreferrer"`. A link to the API's `/knowledge_base/download_doc` (the API writes
its own, in-cluster address into KB-chat sources) is pointed at this web UI's `/ui/download`,
the only port users reach.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import nh3
from markdown_it import MarkdownIt

DOWNLOAD_ROUTE = "/ui/download"
API_DOWNLOAD_PATH = "/knowledge_base/download_doc"
TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code"),
    *("strong", "em", "b", "i", "del", "s", "sub", "sup", "span", "ul", "ol", "li", "a"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
# Dropped with everything inside them, not just unwrapped.
CONTENT_DROPPED = {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg"}
SCHEMES = {"http", "https"}

# CommonMark with raw HTML allowed through to the sanitiser (0.2's answers carry a `<span>`),
# plus GFM tables and strikethrough as LLMs write them.
_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def download_link(href: str) -> str | None:
    """`/ui/download?…` for a link to the API's download route (any host), else None."""
    url = urlsplit(href)
    if not url.path.endswith(API_DOWNLOAD_PATH):
        return None
    query = dict(parse_qsl(url.query))
    kept: dict[str, str] = {k: query[k] for k in ("knowledge_base_name", "file_name") if k in query}
    return f"{DOWNLOAD_ROUTE}?{urlencode(kept)}"


def _attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "a" and attribute == "href":
        return download_link(value) or value
    return value


_cleaner = nh3.Cleaner(
    tags=TAGS,
    clean_content_tags=CONTENT_DROPPED,
    attributes=ATTRIBUTES,
    attribute_filter=_attribute,
    url_schemes=SCHEMES,
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def render_markdown(text: str) -> str:
    """Markdown (with any HTML in it) → HTML that is safe to insert into the page."""
    return _cleaner.clean(_markdown.render(text))
