"""The admin pieces every app shares (``manualqa.admin_tools``)."""

from __future__ import annotations

from manualqa.admin_tools import html_table


def test_a_read_only_table_escapes_every_heading_and_cell():
    table = html_table(
        ("Page", "<Error>"),
        [("a<b", "x & y"), (2, "Note: kept")],
        css_class='wide"',
    )

    assert table == (
        '<table class="wide&quot;"><thead><tr><th>Page</th><th>&lt;Error&gt;</th></tr></thead>'
        "<tbody><tr><td>a&lt;b</td><td>x &amp; y</td></tr><tr><td>2</td><td>Note: kept</td></tr>"
        "</tbody></table>"
    )
    assert html_table(("Only",), []) == (
        "<table><thead><tr><th>Only</th></tr></thead><tbody></tbody></table>"
    )
