"""The admin pieces every app shares (``manualqa.admin_tools``)."""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError

from manualqa.admin_tools import JobAdminMixin, html_table, shortened


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


class Said(JobAdminMixin):
    """A job admin that keeps what it says, for :meth:`JobAdminMixin.act_on_each`."""

    def __init__(self) -> None:
        self.said: list[tuple[str, int]] = []

    def message_user(self, request, message: str, level: int = messages.INFO) -> None:
        self.said.append((message, level))


def test_an_action_on_each_job_warns_of_each_refusal_and_counts_the_rest():
    def cancel(*, job, user):
        if job == 2:
            raise ValidationError(["No such job.", "Too late."])
        if job == 3:
            raise PermissionDenied("Cancelling needs the Trainer role.")
        assert user == "tom"

    admin = Said()
    request = SimpleNamespace(user="tom")

    count = admin.act_on_each(
        request, [1, 2, 3, 4], cancel, row_argument="job", done="Cancelled {count} job(s)."
    )

    assert count == 2
    assert admin.said == [
        ("No such job.; Too late.", messages.WARNING),
        ("Cancelling needs the Trainer role.", messages.WARNING),
        ("Cancelled 2 job(s).", messages.SUCCESS),
    ]


def test_an_action_that_went_nowhere_says_only_why():
    def refuse(*, run, user):
        raise ValidationError("Run #1 is running.")

    admin = Said()

    assert admin.act_on_each(SimpleNamespace(user=None), [1], refuse, done="Done {count}.") == 0
    assert admin.said == [("Run #1 is running.", messages.WARNING)]


def test_shortened_text_keeps_what_fits_and_ends_what_does_not_with_an_ellipsis():
    assert shortened("How do I charge?", 16) == "How do I charge?"
    assert shortened("How do I charge it?", 16) == "How do I charge…"
    assert len(shortened("x" * 500, 120)) == 120
