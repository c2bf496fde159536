"""What a figure's caption looks like in a document's markdown, for the ingestion that writes it
and the quote composer that reads it alike.

A module of its own, so that the quote composer (``chat.text_units``, plain Python) does not
import the HTML scraper (BeautifulSoup, the crawler) for it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NUMBERED_CAPTION", "is_caption_line"]

#: A caption that numbers its figure: "Figure 3. Charge port", "Fig. 2 ...", "Figure B-1 ...".
NUMBERED_CAPTION: Final = re.compile(r"(?i)^(?:figure|fig\.)\s*[a-z]?-?\d")
#: A line longer than this is prose that starts with "Figure 3 shows ...", not a caption.
CAPTION_MAX_WORDS: Final = 25


def is_caption_line(line: str) -> bool:
    """Whether a markdown line is a figure's caption on its own: the "*Figure 3. ...*" or
    "*Figure: ...*" line that ingestion writes under a picture it keeps
    (``curation.scraping.figures.figure_caption_line``), or a numbered caption left as a
    paragraph ("Figure 1. Tire and Loading Information label." under a picture not kept)."""
    text = line.strip()
    if len(text.split()) > CAPTION_MAX_WORDS:
        return False
    text = text.strip("*_").lstrip()
    return bool(NUMBERED_CAPTION.match(text)) or text.lower().startswith("figure:")
