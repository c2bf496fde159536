"""Template filters for manuals' pages: a passage rendered with its figures in place."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from curation.models import DocumentChunk, Figure
from curation.scraping.figures import figure_caption_line
from curation.selectors import figure_url
from manualqa.rendering import render_markdown

register = template.Library()


@register.filter(name="passage_html")
def passage_html(chunk: DocumentChunk, manual_id: int) -> SafeString:
    """A chunk's body as sanitised HTML, each of its figures (prefetched ``chunk.figures``) in
    place: where its marker or its caption line stands, else after the text."""
    figures = list(chunk.figures.all())
    return render_with_figures(chunk.body, figures, manual_id=manual_id)


def render_with_figures(text: str, figures: Sequence[Figure], *, manual_id: int) -> SafeString:
    """``text`` (markdown) as sanitised HTML with ``figures`` in place.

    A figure takes the place of its marker line ``<!-- figure KEY -->`` (with the caption line
    right after it) or, in a chunk's text where the markers were taken out, of its caption
    line; one found in neither comes after the text. Each place is held by a random token
    while the markdown is rendered and sanitised, then swapped for the figure's HTML, built
    with escaping: neither the text nor a caption can add markup of its own.
    """
    if not figures:
        return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3
    nonce = secrets.token_hex(8)
    lines = text.split("\n")
    used: set[int] = set()
    tokens: dict[str, SafeString] = {}
    trailing: list[str] = []
    for index, figure in enumerate(figures):
        token = f"MQAFIGURE{nonce}N{index}"
        tokens[token] = _figure_html(figure, manual_id=manual_id)
        place = _place(lines, figure, used)
        if place is None:
            trailing.append(token)
        else:
            lines[place] = f"\n{token}\n"
    body = "\n".join(lines) + "".join(f"\n\n{token}" for token in trailing)
    html = render_markdown(body)
    for token, figure_html in tokens.items():
        html = html.replace(f"<p>{token}</p>", figure_html).replace(token, figure_html)
    return mark_safe(html)  # noqa: S308 - sanitised by nh3; figures built by format_html


def _place(lines: list[str], figure: Figure, used: set[int]) -> int | None:
    """The line a figure stands on: its marker (whose caption line then goes, as the figure
    shows its caption), else its caption line; None where neither is in the text."""
    marker = f"<!-- figure {figure.key} -->"
    caption = figure_caption_line(figure.caption)
    for index, line in enumerate(lines):
        if index not in used and line.strip() == marker:
            used.add(index)
            following = next((i for i in range(index + 1, len(lines)) if lines[i].strip()), None)
            if caption and following is not None and lines[following].strip() == caption:
                lines[following] = ""
                used.add(following)
            return index
    if caption:
        for index, line in enumerate(lines):
            if index not in used and line.strip() == caption:
                used.add(index)
                return index
    return None


def _figure_html(figure: Figure, *, manual_id: int) -> SafeString:
    url = figure_url(manual_id=manual_id, document_id=figure.document_id, figure_id=figure.pk)
    caption = (
        format_html('<figcaption class="doc-figure-caption">{}</figcaption>', figure.caption)
        if figure.caption
        else ""
    )
    return format_html(
        '<figure class="doc-figure"><a href="{}"><img src="{}" alt="{}" width="{}" height="{}" '
        'loading="lazy" decoding="async"></a>{}</figure>',
        url,
        url,
        figure.caption,
        figure.width,
        figure.height,
        caption,
    )
