"""Template helpers for the chat pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def local_url(url: str) -> str:
    """``url`` when it is a path on this site, else an empty string.

    Citation links are made by the server, but they are stored data: a link a page renders from
    them must never become ``javascript:`` or point at another site.
    """
    url = str(url or "")
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return ""


@register.filter
def milliseconds(value: int | None) -> str:
    """``1234`` as ``1,234 ms``, or ``1.2 s`` from ten seconds on; empty for None."""
    if value is None:
        return ""
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:,} ms"
