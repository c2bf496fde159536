"""Turn one owner's-manual web page (raw HTML) into clean, deterministic markdown.

The markdown feeds two consumers: the chunker/embedder (``curation.chunking``) and the LLM
that generates question/answer pairs. Both want the page's *prose* and nothing else, so this
module throws away site chrome (navigation, headers, footers, breadcrumbs, scripts, forms,
images) and keeps only structure that carries meaning: headings, paragraphs, lists, tables,
code and safety callouts ("Warning: ...").

Deliberately plain Python (no Django import) so it can be unit-tested and reused from scripts.

Design choices, fixed so that output is stable across runs and pages:

* Emphasis (``<b>``, ``<em>`` ...) is dropped, never rendered as ``**``/``_``: it adds tokens
  without meaning for embeddings and would hide callout labels such as ``<b>Warning:</b>``.
* Links keep their text only; URLs are noise for retrieval and QA generation.
* Text is normalised to ASCII where a faithful equivalent exists (see :func:`normalize_text`);
  anything without one (CJK, emoji, ...) is kept so no text is silently lost.
* ``™`` and ``®`` are removed (they add nothing a reader asks about); ``©`` becomes ``(C)``
  because a copyright line without it changes meaning.

Two steps, one module each: :mod:`.text` (decoding and normalisation) and :mod:`.markdown`
(HTML to markdown).
"""

from curation.scraping.markdown import CleanedPage, html_to_markdown
from curation.scraping.text import (
    PageRejected,
    decode_html,
    drop_lost_references,
    normalize_text,
)

__all__ = [
    "CleanedPage",
    "PageRejected",
    "decode_html",
    "drop_lost_references",
    "html_to_markdown",
    "normalize_text",
]
