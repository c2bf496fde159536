"""Markdown to safe HTML. Text from manuals and models never reaches a page unsanitised."""

from __future__ import annotations

import markdown
import nh3

_ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "hr", "a",
    "mark", "span",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"align"}, "th": {"align"}}


def render_markdown(text: str) -> str:
    """Render markdown (tables included) to HTML that keeps only harmless tags and attributes."""
    html = markdown.markdown(
        text or "",
        extensions=["tables", "sane_lists"],
        # nh3 strips style attributes, so column alignment travels as align="...".
        extension_configs={"tables": {"use_align_attribute": True}},
    )
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
