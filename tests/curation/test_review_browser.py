"""The focused review page in a real headless Chromium, driven with the keyboard only.

The app is served by pytest-django's ``live_server`` (a thread in this process, on the test
database), and Chromium talks to it over HTTP like a reviewer's browser. Rows are created
before the browser starts and checked after it stops: the database is never touched while
Playwright's event loop runs in this thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.models import QAPair, QAPairRevision
from manualqa.celery import app as celery_app
from tests.curation.generation_support import make_manual
from tests.curation.review_support import PASSWORD, make_pairs, reviewer, trainer
from training.services import snapshot_create, snapshot_records

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}; install it with `apt-get install -y chromium`",
    ),
]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (see requirements)"
)
expect = sync_api.expect

EDITED_ANSWER = "Press the brake pedal, then say a quick word: the car starts and is ready."


def test_a_reviewer_works_through_the_queue_with_the_keyboard_only(live_server, monkeypatch):
    manual = make_manual("Browser manual")
    rita = reviewer("rita")
    # The queue goes lowest grounding first: p1, p2, p3, p4, p5.
    p1, p2, p3, p4, p5 = make_pairs(manual, 5, grounding=[0.1, 0.2, 0.3, 0.4, 0.5])
    originals = {pair.pk: pair.answer for pair in (p1, p2, p3, p4, p5)}
    # An edit queues the pair's rescoring (tests/curation/test_review_services.py runs it); here
    # it is captured at send time, so that a worker of another test cannot move p4 in the
    # queue halfway through the walk below.
    sent = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args=None, *rest, **kw: sent.append((name, args))
    )

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            review_as_a_reviewer(browser, live_server.url, p1, p2, p3, p4, p5)
            assert sent == [("curation.embed_score_pairs", ([p4.pk],))]  # the edit, rescored
        finally:
            browser.close()

    statuses = dict(QAPair.objects.values_list("pk", "status"))
    assert statuses == {
        p1.pk: "approved",
        p2.pk: "rejected",
        p3.pk: "pending",  # skipped
        p4.pk: "approved",
        p5.pk: "rejected",
    }
    edited = QAPair.objects.get(pk=p4.pk)
    assert edited.answer == EDITED_ANSWER
    assert edited.original_answer == originals[p4.pk]
    assert QAPair.objects.get(pk=p5.pk).answer == originals[p5.pk]  # Esc left the edit unsaved
    revisions = [
        (revision.pair_id, revision.action, revision.user_id)
        for revision in QAPairRevision.objects.order_by("id")
    ]
    assert revisions == [
        (p1.pk, "approve", rita.pk),
        (p2.pk, "reject", rita.pk),
        (p4.pk, "edit", rita.pk),
        (p4.pk, "approve", rita.pk),
        (p5.pk, "reject", rita.pk),
    ]
    assert QAPairRevision.objects.get(pair=p4, action="edit").changes == {
        "answer": [originals[p4.pk], EDITED_ANSWER]
    }
    assert set(QAPair.objects.exclude(pk=p3.pk).values_list("reviewed_by", flat=True)) == {rita.pk}

    # The reviewed batch becomes a dataset: the two approved pairs, frozen, exported line by line.
    snapshot = snapshot_create(manual=manual, user=trainer("tom"), prompt_format="seed_inst")
    assert snapshot.pair_count == 2
    lines = []
    for split in ("train", "eval", "test"):
        lines += [json.loads(line) for line in export_lines(snapshot, split)]
    expected = {
        f"<s>[INST] {pair.question} [/INST] {pair.answer} </s>"
        for pair in QAPair.objects.filter(status="approved")
    }
    assert {line["text"] for line in lines} == expected
    assert EDITED_ANSWER in "".join(expected)


def export_lines(snapshot, split: str) -> list[str]:
    """The JSONL lines of one split, as the export writes them."""
    return [json.dumps(record) for record in snapshot_records(snapshot, split=split)]


def review_as_a_reviewer(browser, base_url: str, p1, p2, p3, p4, p5) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    # Log in through the admin's own form, then land on the review page.
    page.goto(f"{base_url}/admin/login/?next=/admin/curation/qapair/review/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    review = page.locator("#review")
    expect(review).to_have_attribute("data-pair-id", str(p1.pk))
    expect(page.locator("#review-source mark")).to_have_count(1)

    def key(name: str, then_pair) -> None:
        with page.expect_navigation():
            page.keyboard.press(name)
        expect(review).to_have_attribute("data-pair-id", str(then_pair.pk))

    key("a", p2)  # approve p1
    expect(page.locator(".messagelist")).to_contain_text("Approved")
    key("r", p3)  # reject p2
    key("s", p4)  # skip p3
    key("k", p3)  # back to p3
    key("j", p4)  # and on to p4

    # Edit p4's answer: "e" opens the editor on the answer; the letters typed are text, not
    # shortcuts; Ctrl+Enter saves and the page stays on p4.
    page.keyboard.press("e")
    answer = page.locator("#review-edit-answer")
    expect(answer).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(EDITED_ANSWER)
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    expect(review).to_have_attribute("data-pair-id", str(p4.pk))
    expect(page.locator("#review-answer")).to_have_text(EDITED_ANSWER)
    expect(page.locator(".messagelist")).to_contain_text("Saved your edit")
    key("a", p5)  # approve the edited p4

    # Esc leaves the editor without saving; then "r" rejects p5 and the queue wraps to p3.
    page.keyboard.press("e")
    expect(answer).to_be_focused()
    page.keyboard.type(" zzz")
    page.keyboard.press("Escape")
    expect(answer).not_to_be_visible()
    expect(page.locator("#review-answer")).to_be_visible()
    key("r", p3)
    expect(page.locator(".review-progress")).to_contain_text("4 of 5 reviewed")
    expect(page.locator("#review-pending-count")).to_have_text("1")
