"""The chat page in a real headless Chromium: an owner asks the sample manual's assistant a
question on a phone-sized screen, watches the answer arrive token by token, checks a citation
on the document page and gives a thumbs-down; compare mode on a desktop screen.

The app is served by pytest-django's ``live_server`` (threads in this process, on the test
database); the model is a loopback OpenAI-compatible server that streams one word at a time
with a pause, so the page can be seen mid-answer. Rows are created before the browser starts
and checked after it closes: the database is never touched while Playwright runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chat.models import Feedback, Message, Preference
from curation.models import QAPair
from tests.chat.conftest import sample_question
from tests.chat.support import make_assistant, openai_endpoint, tiny_manual
from tests.fakeopenai import FakeOpenAI

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

# Streamed one word per chunk, a quarter of a second apart: about five seconds in all.
SLOW_ANSWER = (
    "For the 18 inch wheels, inflate the tires to **42 PSI** (290 kPa) when they are cold [1]. "
    "Check the pressure once a month with an accurate gauge."
)
LAST_WORD = "gauge."
COMMENT = "It should say that the 19 inch sport rims take 45 PSI at the rear."

# Finds the answer while it streams: its text so far, and its first-token line.
PARTIAL_ANSWER_JS = """() => {
  const answer = document.querySelector('.chat-answer[data-state="streaming"]');
  if (!answer) return null;
  const text = answer.querySelector('.chat-answer-text').textContent;
  if (!text.trim()) return null;
  return {
    text: text,
    streaming: answer.classList.contains('streaming'),
    busy: answer.getAttribute('aria-busy'),
    ttft: answer.querySelector('.chat-ttft').textContent,
  };
}"""


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


def test_an_owner_sees_the_answer_stream_checks_a_citation_and_gives_a_thumbs_down(
    live_server, sample_manual
):
    question = sample_question("q02").question  # the tire pressure for 18 inch wheels
    with FakeOpenAI(lambda messages: SLOW_ANSWER) as fake:
        fake.chunk_delay_s = 0.25
        make_assistant(
            sample_manual,
            name="Sample manual (RAG)",
            slug="sample-rag",
            mode="rag",
            endpoint=openai_endpoint(fake.base_url),
            is_default=True,
        )
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                seen = chat_on_a_phone(browser, live_server.url, question)
            finally:
                browser.close()

    # Part of the answer was on the page while it was still streaming.
    partial = seen["partial"]
    assert partial["streaming"] and partial["busy"] == "true"
    assert partial["text"].strip() and LAST_WORD not in partial["text"]
    assert SLOW_ANSWER.startswith(partial["text"].strip())
    assert re.fullmatch(r"First token in \d+ ms", partial["ttft"])
    assert re.fullmatch(r"First token in [\d,.]+ (ms|s)", seen["final_ttft"])
    assert seen["phone_fits"], "the page scrolls sideways on a phone"

    answer = Message.objects.get(role="assistant")
    assert answer.content == SLOW_ANSWER and answer.ttft_ms is not None
    assert seen["conversation_path"] == f"/chat/c/{answer.conversation_id}/"
    assert int(seen["cited_chunk"]) in {citation["chunk_id"] for citation in answer.citations}
    feedback = Feedback.objects.get()
    assert (feedback.message, feedback.rating, feedback.comment) == (answer, "down", COMMENT)
    pair = QAPair.objects.get(origin=QAPair.Origin.CHAT_FEEDBACK)
    assert pair.status == QAPair.Status.PENDING and feedback.qa_pair == pair
    assert pair.question == question and pair.answer == SLOW_ANSWER


def chat_on_a_phone(browser, base_url: str, question: str) -> dict:
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.set_default_timeout(20_000)
    seen: dict = {}
    page.goto(f"{base_url}/chat/")
    expect(page.locator("#chat-assistant")).to_have_value("sample-rag")
    # One column: the conversation first, the history under it, nothing wider than the screen.
    main_box = page.locator(".chat-main").bounding_box()
    sidebar_box = page.locator(".chat-sidebar").bounding_box()
    seen["phone_fits"] = (
        sidebar_box["y"] > main_box["y"]
        and page.evaluate("document.documentElement.scrollWidth") <= 390
    )

    page.fill("#chat-question", question)
    page.click("#chat-send")
    seen["partial"] = page.wait_for_function(PARTIAL_ANSWER_JS, polling=50).json_value()

    answer = page.locator('.chat-answer[data-state="done"]')
    expect(answer).to_have_count(1, timeout=30_000)
    expect(page.locator('.chat-answer[data-state="streaming"]')).to_have_count(0)
    expect(answer.locator(".chat-answer-text strong")).to_have_text("42 PSI")
    expect(answer.locator(".chat-ttft")).to_contain_text("First token in")
    seen["final_ttft"] = answer.locator(".chat-ttft").text_content().strip()
    expect(page.locator("#chat-question")).to_have_value("")
    seen["conversation_path"] = page.evaluate("location.pathname")
    expect(page.locator("#chat-history a[aria-current=page]")).to_contain_text(question[:40])

    # The citation opens the manual's page with the cited passage highlighted.
    citation = answer.locator(".chat-citation a").first
    seen["cited_chunk"] = citation.get_attribute("data-chunk-id")
    with page.expect_navigation():
        citation.click()
    cited = page.locator(f"#chunk-{seen['cited_chunk']}")
    expect(cited).to_have_class(re.compile(r"\bhighlighted\b"))
    expect(cited).to_be_in_viewport()
    expect(page.locator(".chunk.highlighted")).to_have_count(1)

    # Back in the conversation: thumbs down, with a comment.
    page.go_back()
    answer = page.locator('.chat-answer[data-state="done"]')
    expect(answer).to_have_count(1)
    answer.get_by_role("button", name="No", exact=True).click()  # opens the comment box
    comment = answer.locator("textarea[name=comment]")
    expect(comment).to_be_focused()
    comment.fill(COMMENT)
    answer.get_by_role("button", name="Send thumbs-down").click()
    expect(answer.locator(".chat-feedback-status")).to_contain_text(
        "Thanks! Your thumbs-down is recorded"
    )
    expect(answer.locator(".chat-thumb-down")).to_have_attribute("aria-pressed", "true")
    expect(comment).to_be_hidden()
    return seen


def test_compare_mode_streams_two_answers_side_by_side_and_records_the_better_one(live_server):
    manual = tiny_manual("Compare manual")
    with FakeOpenAI(lambda messages: SLOW_ANSWER) as fake:
        fake.chunk_delay_s = 0.05
        generative = make_assistant(
            manual, name="Generative", slug="generative", endpoint=openai_endpoint(fake.base_url)
        )
        quoting = make_assistant(manual, name="Quoting", slug="quoting", endpoint=None)
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(20_000)
                page.goto(f"{live_server.url}/chat/compare/")
                page.select_option("#compare-a", "generative")
                page.select_option("#compare-b", "quoting")
                page.fill("#compare-question", "What pressure should the tires have?")
                page.click("#compare-send")

                done_a = page.locator('#compare-log-a .chat-answer[data-state="done"]')
                done_b = page.locator('#compare-log-b .chat-answer[data-state="done"]')
                expect(done_a).to_have_count(1, timeout=30_000)
                expect(done_b).to_have_count(1, timeout=30_000)
                expect(done_a).to_contain_text("42 PSI")
                expect(done_b).to_contain_text("Quoted from the manual")
                box_a, box_b = done_a.bounding_box(), done_b.bounding_box()
                side_by_side = box_a["x"] + box_a["width"] <= box_b["x"]

                page.get_by_role("button", name="B was better").click()
                expect(page.locator("#compare-verdict-status")).to_have_text(
                    "Recorded: B was better. Thank you!"
                )
            finally:
                browser.close()

    assert side_by_side
    preference = Preference.objects.get()
    assert (preference.assistant_a, preference.assistant_b) == (generative, quoting)
    assert preference.chosen == "b"
    assert preference.message_a.assistant == generative
    assert preference.message_b.assistant == quoting
