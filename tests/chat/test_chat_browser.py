"""The chat page in a real headless Chromium.

* A fresh install, as ``manage.py bootstrap`` leaves it: an owner asks the page's own example
  question and gets the manual's procedure, quoted once, with a link to the passage.
* An owner on a phone-sized screen watches a grounded answer arrive (the quote from the manual
  first, then the verified answer sentence by sentence), checks a citation on the document page
  and gives a thumbs-down.
* Compare mode on a desktop screen.

The app is served by pytest-django's ``live_server`` (threads in this process, on the test
database); the model is the bundled local SmolLM2-135M or a loopback OpenAI-compatible server
that streams one word at a time with a pause, so the page can be seen mid-answer. Rows are
created before the browser starts and checked after it closes: the database is never touched
while Playwright runs.
"""

from __future__ import annotations

import io
import re
from importlib import import_module
from pathlib import Path

import pytest
from django.apps import apps as django_apps

from chat.models import Assistant, Feedback, Message, Preference
from curation.models import LLMEndpoint, QAPair
from manualqa.management.commands.bootstrap import DEFAULT_ENDPOINT_NAME, Command
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

# Streamed one word per chunk, a quarter of a second apart: about ten seconds in all. Every
# sentence is in the sample manual's tire pressure passage, so all pass verification; each
# reaches the page once it is complete and checked, well before the last one is written.
SLOW_ANSWER = (
    "Inflate the tires to **42 PSI** (290 kPa), front and rear, on the 18-inch Aero wheel [1]. "
    "Always check and adjust pressures when the tires are cold [1]. "
    "These pressures also apply when the vehicle is fully loaded [1]."
)
LAST_WORDS = "fully loaded"
COMMENT = "It should say that the 19 inch sport rims take 45 PSI at the rear."

# Finds the answer while it streams: its text so far, the quote shown above the rest, and its
# first-text line.
PARTIAL_ANSWER_JS = """() => {
  const answer = document.querySelector('.chat-answer[data-state="streaming"]');
  if (!answer) return null;
  const text = answer.querySelector('.chat-answer-text').textContent;
  if (!text.trim()) return null;
  const quote = answer.querySelector('.chat-quote');
  return {
    text: text,
    quote: quote.hidden ? '' : quote.querySelector('.chat-quote-text').textContent,
    streaming: answer.classList.contains('streaming'),
    busy: answer.getAttribute('aria-busy'),
    ttft: answer.querySelector('.chat-ttft').textContent,
  };
}"""

# The quote while the answer streams, once it has arrived: the first text the owner reads.
STREAMING_QUOTE_JS = """() => {
  const answer = document.querySelector('.chat-answer[data-state="streaming"]');
  const quote = answer && answer.querySelector('.chat-quote');
  if (!quote || quote.hidden) return null;
  return {
    text: quote.querySelector('.chat-quote-text').textContent,
    steps: quote.querySelectorAll('.chat-quote-text ol > li').length,
    tables: quote.querySelectorAll('.chat-quote-text table').length,
    answer: answer.querySelector('.chat-answer-text').textContent,
    ttft: answer.querySelector('.chat-ttft').textContent,
  };
}"""

# What an owner reads of a finished answer: its text and the quote, line by line (a list item
# is a line), and sentence by sentence.
ANSWER_LINES_JS = """(answer) => {
  const lines = [];
  for (const part of answer.querySelectorAll('.chat-answer-text, .chat-quote-text')) {
    for (const line of part.innerText.split('\\n')) {
      if (line.trim()) lines.push(line.trim());
    }
  }
  return lines;
}"""

EXAMPLE_QUESTION = "How do I open the charge port if the car has no power?"


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


def fresh_install() -> Assistant:
    """What ``manage.py bootstrap`` leaves: the sample manual crawled over HTTP and embedded,
    and the default assistant over it with the bundled local model, every setting at its
    default."""
    if not LLMEndpoint.objects.filter(name=DEFAULT_ENDPOINT_NAME).exists():
        # An earlier transactional test emptied the tables, and the row a migration made.
        migration = import_module("curation.migrations.0004_default_local_endpoint")
        migration.create_default(django_apps, None)
    command = Command(stdout=io.StringIO())
    command._ingest_sample()
    command._default_assistant()
    return Assistant.objects.get(is_default=True)


def sentences(lines: list[str]) -> list[str]:
    return [
        sentence.strip()
        for line in lines
        for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"^\d+\.\s+", "", line))
        if sentence.strip()
    ]


def repeated(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [item for item in items if item in seen or seen.add(item)]


def ask_the_example_question(
    browser, base_url: str, *, timeout_ms: int, watch_the_quote: bool = False
) -> dict:
    """On a fresh chat page, ask the example question it shows; what the owner then reads,
    and the manual's page their click on the quote's source opened. ``watch_the_quote``: also
    the quote while the rest of the answer streams (when a model writes after it)."""
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.set_default_timeout(20_000)
    seen: dict = {}
    page.goto(f"{base_url}/chat/")
    seen["example"] = page.locator("#chat-empty .chat-example-question").text_content()
    page.locator("#chat-question").press_sequentially(seen["example"])
    page.click("#chat-send")
    if watch_the_quote:
        seen["streaming_quote"] = page.wait_for_function(
            STREAMING_QUOTE_JS, polling=20, timeout=timeout_ms
        ).json_value()

    answer = page.locator('.chat-answer[data-state="done"]')
    expect(answer).to_have_count(1, timeout=timeout_ms)
    seen["text"] = answer.inner_text()
    seen["answer_text"] = " ".join(answer.locator(".chat-answer-text").all_inner_texts())
    seen["quote"] = answer.locator(".chat-quote-text").inner_text()
    seen["lines"] = answer.evaluate(ANSWER_LINES_JS)
    seen["ttft"] = answer.locator(".chat-ttft").text_content().strip()
    seen["phone_fits"] = page.evaluate("document.documentElement.scrollWidth") <= 390
    seen["see_also"] = answer.locator(".chat-see-also a").all_inner_texts()

    # The quote's source opens the manual's page on the passage it was taken from.
    source = answer.locator(".chat-quote .chat-quote-source").first
    seen["source_label"] = source.inner_text()
    seen["cited_chunk"] = source.get_attribute("data-chunk-id")
    with page.expect_navigation():
        source.click()
    # (A passage that goes on into its neighbour, a procedure chunking split, highlights both.)
    highlighted = page.locator(".chunk.highlighted")
    expect(highlighted.first).to_be_in_viewport()
    seen["highlighted_ids"] = [element.get_attribute("id") for element in highlighted.all()]
    seen["highlighted_text"] = "\n".join(highlighted.all_inner_texts())
    return seen


def test_a_fresh_install_answers_the_example_question_with_the_manuals_procedure(live_server):
    assistant = fresh_install()
    assert (assistant.endpoint.name, assistant.answer_style) == (DEFAULT_ENDPOINT_NAME, "quoted")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            seen = ask_the_example_question(browser, live_server.url, timeout_ms=30_000)
        finally:
            browser.close()

    assert seen["example"] == EXAMPLE_QUESTION
    answer = Message.objects.get(role="assistant")
    assert answer.extractive and not answer.declined and not answer.raw_content
    # The answer is the manual's procedure, quoted once: no line, step or sentence repeats.
    assert "release cable" in seen["quote"] and seen["answer_text"] == ""
    assert re.fullmatch(r"First text in [\d,.]+ (ms|s)", seen["ttft"])
    assert not repeated(seen["lines"]), seen["lines"]
    assert not repeated(sentences(seen["lines"])), seen["lines"]
    assert seen["text"].count("release cable") == seen["quote"].count("release cable")
    assert seen["phone_fits"], "the page scrolls sideways on a phone"
    # Under the quote, the other sections on the charge port, as links.
    assert seen["see_also"] == [item["heading_path"] for item in answer.quote["see_also"]]
    assert seen["see_also"] and all("Charging" in title for title in seen["see_also"])
    # Its link opened the passage it was taken from, highlighted.
    cited = next(c for c in answer.citations if c["n"] == answer.quote["numbers"][0])
    assert seen["source_label"].startswith(f"[{cited['n']}]")
    assert cited["heading_path"] in seen["source_label"]
    assert seen["cited_chunk"] == str(cited["chunk_id"])
    assert seen["highlighted_ids"] == [f"chunk-{pk}" for pk in cited["chunk_ids"]]
    assert f"chunk-{cited['chunk_id']}" in seen["highlighted_ids"]
    assert "release cable" in seen["highlighted_text"]


def test_a_question_sent_from_an_expired_page_says_to_reload_it(live_server):
    fresh_install()
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{live_server.url}/chat/")
            context.clear_cookies()  # the CSRF cookie is gone, as when the page outlived it
            page.locator("#chat-question").fill(EXAMPLE_QUESTION)
            page.click("#chat-send")
            alert = page.locator("#chat-alert")
            expect(alert).to_have_text("This page has expired. Reload it and ask again.")
            expect(page.locator(".chat-answer")).to_have_count(0)
        finally:
            browser.close()

    assert not Message.objects.exists()


def test_the_local_model_answers_grounded_with_only_what_the_manual_supports(live_server):
    assistant = fresh_install()
    Assistant.objects.filter(pk=assistant.pk).update(answer_style="grounded")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            seen = ask_the_example_question(
                browser, live_server.url, timeout_ms=60_000, watch_the_quote=True
            )
        finally:
            browser.close()

    answer = Message.objects.get(role="assistant")
    assert answer.answer_style == "grounded" and answer.raw_content and not answer.error
    assert "release cable" in seen["quote"]
    # The quote was on the page first, while the model was still writing.
    assert "release cable" in seen["streaming_quote"]["text"]
    # already rendered as the finished answer shows it: the procedure's steps as a list
    assert seen["streaming_quote"]["steps"] >= 3, seen["streaming_quote"]
    assert re.fullmatch(r"First text in \d+ ms", seen["streaming_quote"]["ttft"])
    assert not repeated(seen["lines"]), seen["lines"]
    # Whatever the small model wrote, the owner read only the sentences the manual supports.
    page_text = " ".join(seen["text"].split())
    for verdict in answer.verification:
        sentence = " ".join(verdict["text"].replace("**", "").split())
        if not verdict["supported"] and len(sentence.split()) >= 4:
            assert sentence not in page_text, (sentence, answer.verification)
    if answer.content != answer.quote_text:
        kept = [v for v in answer.verification if v["supported"]]
        assert kept and " ".join(answer.content.split()) in " ".join(
            " ".join(v["text"] for v in kept).split()
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
            answer_style="grounded",
            is_default=True,
        )
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                seen = chat_on_a_phone(browser, live_server.url, question)
            finally:
                browser.close()

    answer = Message.objects.get(role="assistant")
    # The quote from the manual came first, before the model had written a sentence, its
    # table already a table (no pipes and dashes while the model writes).
    first = seen["first_quote"]
    cells = re.sub(r"\||-{3,}", " ", answer.quote_text)
    assert " ".join(first["text"].split()) == " ".join(cells.split()), first
    assert first["tables"] == 1 and not first["answer"].strip()
    assert re.fullmatch(r"First text in \d+ ms", first["ttft"])
    # Then part of the answer was on the page while it was still streaming, under the quote.
    partial = seen["partial"]
    assert partial["streaming"] and partial["busy"] == "true"
    assert partial["text"].strip() and LAST_WORDS not in partial["text"]
    assert SLOW_ANSWER.startswith(partial["text"].strip())
    assert partial["quote"] == first["text"] and partial["ttft"] == first["ttft"]
    assert re.fullmatch(r"First text in [\d,.]+ (ms|s)", seen["final_ttft"])
    assert seen["phone_fits"], "the page scrolls sideways on a phone"

    assert answer.content == SLOW_ANSWER and answer.ttft_ms is not None
    assert seen["final_quote"].strip() and "42 PSI" in seen["final_quote"]
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
    seen["first_quote"] = page.wait_for_function(STREAMING_QUOTE_JS, polling=20).json_value()
    seen["partial"] = page.wait_for_function(PARTIAL_ANSWER_JS, polling=50).json_value()

    answer = page.locator('.chat-answer[data-state="done"]')
    expect(answer).to_have_count(1, timeout=30_000)
    expect(page.locator('.chat-answer[data-state="streaming"]')).to_have_count(0)
    expect(answer.locator(".chat-answer-text strong")).to_have_text("42 PSI")
    expect(answer.locator(".chat-quote")).to_contain_text("From the manual")
    seen["final_quote"] = answer.locator(".chat-quote-text").inner_text()
    expect(answer.locator(".chat-ttft")).to_contain_text("First text in")
    seen["final_ttft"] = answer.locator(".chat-ttft").text_content().strip()
    expect(page.locator("#chat-question")).to_have_value("")
    seen["conversation_path"] = page.evaluate("location.pathname")
    expect(page.locator("#chat-history a[aria-current=page]")).to_contain_text(question[:40])

    # The quote's source opens the manual's page with the cited passage highlighted.
    citation = answer.locator(".chat-quote .chat-quote-source").first
    seen["cited_chunk"] = citation.get_attribute("data-chunk-id")
    seen["cited_href"] = citation.get_attribute("href")
    with page.expect_navigation():
        citation.click()
    cited = page.locator(f"#chunk-{seen['cited_chunk']}")
    expect(cited).to_have_class(re.compile(r"\bhighlighted\b"))
    expect(page.locator(".chunk.highlighted").first).to_be_in_viewport()
    # Every chunk the link names (?chunk=...&chunk=...) is highlighted, and no other.
    expect(page.locator(".chunk.highlighted")).to_have_count(seen["cited_href"].count("chunk="))

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
            manual,
            name="Generative",
            slug="generative",
            endpoint=openai_endpoint(fake.base_url),
            answer_style="generated",
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
