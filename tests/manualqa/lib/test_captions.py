"""A figure's caption line: what ingestion writes is what the quote composer leaves out."""

from __future__ import annotations

import pytest

from curation.scraping.figures import figure_caption_line
from manualqa.lib.captions import is_caption_line


@pytest.mark.parametrize(
    "caption", ["Figure 3. Charge port", "Fig. 2 Key card reader", "Charge port on the left"]
)
def test_every_caption_line_ingestion_writes_is_read_as_a_caption(caption):
    assert is_caption_line(figure_caption_line(caption))


@pytest.mark.parametrize(
    ("line", "caption"),
    [
        ("Figure 1. Tire and Loading Information label.", True),  # a picture not kept
        ("Figure B-1 Jump terminals", True),
        ("Figure 3 shows where the label is on left-hand drive vehicles, and the label itself "
         "gives the pressures in kPa and PSI for every wheel and tire it was built with.", False),
        ("Figures for range are estimates.", False),
        ("Configure the figure of merit.", False),
    ],
)  # fmt: skip
def test_a_caption_line_is_told_from_prose(line, caption):
    assert is_caption_line(line) is caption
