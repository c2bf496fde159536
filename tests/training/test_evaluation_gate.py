"""Evaluation you can defend (issue 16) through real runs: categories in the report and the
exports, baselines and the regression gate (command, API, report), and the judge checked
against reviewers' and owners' verdicts.

The assistants answer directly (no retrieval) through a loopback OpenAI-compatible server
(``tests/fakeopenai.py``), so each test's answers, and so its figures, are known in advance.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from chat import services as chat_services
from chat.models import Assistant, Conversation, Feedback, Message
from curation import services as curation_services
from curation.models import LLMEndpoint, Manual, QAPair
from manualqa import roles
from tests.fakeopenai import FakeOpenAI
from training import evaluation
from training.models import EvaluationBaseline, EvaluationRun

pytestmark = pytest.mark.django_db

_names = itertools.count(1)

# Twelve answerable questions in four categories, and two the manual does not answer.
QUESTIONS = [
    {"id": f"{kind[0]}{n}", "question": f"What is the {kind} code {n}?", "kind": kind,
     "must_include": [f"code {kind} {n}"], "answer": f"It is code {kind} {n}."}
    for kind in ("fact", "procedure", "troubleshooting", "multi_page")
    for n in (1, 2, 3)
] + [
    {"id": "u1", "question": "What does insurance cost?", "kind": "unanswerable"},
    {"id": "u2", "question": "What is the resale value?", "kind": "unanswerable"},
]  # fmt: skip


def questions_jsonl(questions=QUESTIONS) -> str:
    return "".join(json.dumps(question) + "\n" for question in questions)


def _asked(messages) -> str:
    return messages[-1]["content"].rsplit("Question:", 1)[-1]


def knows_everything(messages) -> str:
    """Answers each answerable question with its code; declines the unanswerable ones."""
    match = re.search(r"the (\w+) code (\d)", _asked(messages))
    if match is None:
        return "The manual does not say."
    return f"It is code {match.group(1)} {match.group(2)}."


def grades_by_marker(messages) -> str:
    """A judge that calls an answer right exactly when it starts with "Correct:"."""
    answer = messages[-1]["content"].split("The assistant's answer:", 1)[-1].strip()
    grade = 5 if answer.startswith("Correct:") else 1
    return json.dumps({"correctness": grade, "faithfulness": None})


def _ingest(name: str, folder) -> Manual:
    manual = curation_services.manual_get_or_create(name=name)
    run = curation_services.ingestion_run_create(manual=manual, source=str(folder), enqueue=False)
    curation_services.ingestion_run_execute(run_id=run.pk)
    return manual


@pytest.fixture(scope="module")
def manuals(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict[str, Manual]]:
    """A manual with a page per category that holds its codes, and the same manual with its
    procedure and multi-page pages lost (a planted retrieval regression); committed for the
    module."""
    full = tmp_path_factory.mktemp("codes")
    partial = tmp_path_factory.mktemp("codes-partial")
    for kind in ("fact", "procedure", "troubleshooting", "multi_page"):
        lines = [f"The {kind} code {n} is code {kind} {n}." for n in (1, 2, 3)]
        page = f"# {kind} codes\n\n" + "\n\n".join(lines) + "\n"
        (full / f"{kind}.md").write_text(page)
        if kind in ("fact", "troubleshooting"):
            (partial / f"{kind}.md").write_text(page)
    with django_db_blocker.unblock():
        found = {
            "full": _ingest("Gate manual", full),
            "partial": _ingest("Gate manual, two pages lost", partial),
        }
    yield found
    with django_db_blocker.unblock():
        Manual.objects.filter(pk__in=[m.pk for m in found.values()]).delete()


@pytest.fixture
def manual(manuals) -> Manual:
    return manuals["full"]


@pytest.fixture
def partial_manual(manuals) -> Manual:
    return manuals["partial"]


@pytest.fixture
def servers() -> Iterator[dict[str, FakeOpenAI]]:
    with (
        FakeOpenAI(knows_everything) as good,
        FakeOpenAI(grades_by_marker) as judge,
    ):
        yield {"good": good, "judge": judge}


def endpoint(server: FakeOpenAI) -> LLMEndpoint:
    return LLMEndpoint.objects.create(
        name=f"Fake {next(_names)}",
        kind=LLMEndpoint.Kind.OPENAI,
        model="fake-model",
        base_url=server.base_url,
        temperature=0.0,
        max_tokens=60,
        max_retries=0,
        timeout_s=10,
    )


def direct(manual: Manual, server: FakeOpenAI, name: str) -> Assistant:
    return chat_services.assistant_create(
        manuals=[manual],
        name=name,
        mode=Assistant.Mode.DIRECT,
        answer_style=Assistant.AnswerStyle.GENERATED,
        endpoint=endpoint(server),
    )


def run_now(assistants, questions=QUESTIONS, **options) -> EvaluationRun:
    run = evaluation.evaluation_run_create(
        user=None,
        enqueue=False,
        questions_jsonl=questions_jsonl(questions),
        questions_name="ten.jsonl",
        assistants=assistants,
        **options,
    )
    assert evaluation.evaluation_run_claim(run_id=run.pk)
    run = evaluation.evaluation_run_execute(run_id=run.pk)
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.message
    return run


@pytest.fixture
def evaluator(db) -> User:
    roles.roles_ensure()
    user = User.objects.create_user("evaluator", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.TRAINER_GROUP))
    return user


@pytest.fixture
def reviewer(db) -> User:
    roles.roles_ensure()
    user = User.objects.create_user("reviewer", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.REVIEWER_GROUP))
    return user


# --------------------------------------------------------------------------------------------
# Categories


def test_every_metric_is_given_per_category_in_the_run_the_exports_the_api_and_the_report(
    partial_manual, servers, evaluator, client
):
    worse = direct(partial_manual, servers["good"], "Worse")
    run = run_now([worse])
    client.force_login(evaluator)

    export = json.loads(
        client.get(reverse("training:evaluation_export", args=[run.pk, "json"])).content
    )
    by_kind = export["summary_by_kind"]["Worse"]
    assert sorted(by_kind) == ["fact", "multi_page", "procedure", "troubleshooting", "unanswerable"]
    # Right on facts and troubleshooting, wrong on procedures and multi-page questions, whose
    # pages this manual lost.
    assert by_kind["fact"]["must_include_rate"] == 1.0
    assert by_kind["troubleshooting"]["must_include_rate"] == 1.0
    assert by_kind["procedure"]["must_include_rate"] == 0.0
    assert by_kind["multi_page"]["must_include_rate"] == 0.0
    assert by_kind["unanswerable"]["refusal_accuracy"] == 1.0
    assert export["summary"]["Worse"]["must_include_rate"] == 0.5
    low = export["summary"]["Worse"]["must_include_rate_ci_low"]
    high = export["summary"]["Worse"]["must_include_rate_ci_high"]
    assert 0 < low < 0.5 < high < 1  # twelve answers: a wide interval

    summary_csv = client.get(reverse("training:evaluation_export", args=[run.pk, "summary.csv"]))
    rows = list(csv.DictReader(io.StringIO(summary_csv.content.decode())))
    procedure = next(
        r for r in rows if r["kind"] == "procedure" and r["metric"] == "must_include_rate"
    )
    assert (float(procedure["value"]), procedure["assistant"]) == (0.0, "Worse")
    overall = next(r for r in rows if r["kind"] == "all" and r["metric"] == "must_include_rate")
    assert float(overall["ci_low"]) == pytest.approx(low)

    api = client.get(f"/api/evaluation-runs/{run.pk}/statistics/").json()
    assert api["summary_by_kind"] == export["summary_by_kind"]

    page = client.get(reverse("training:evaluation", args=[run.pk])).content.decode()
    section = page[page.index('id="by-kind"') : page.index('id="questions"')]
    for kind in ("fact", "procedure", "troubleshooting", "multi_page", "unanswerable"):
        assert f'data-kind="{kind}"' in section
    assert "procedure: 3 of 3 failed" in page and "fact: 0 of 3 failed" in page


# --------------------------------------------------------------------------------------------
# Baselines and the gate


@pytest.fixture
def baseline(manual, servers, evaluator) -> EvaluationRun:
    good = direct(manual, servers["good"], "Good")
    run = run_now([good])
    evaluation.evaluation_baseline_set(run=run, user=evaluator)
    return run


def test_the_gate_fails_on_a_planted_regression_naming_the_metric(
    partial_manual, servers, baseline, tmp_path
):
    direct(partial_manual, servers["good"], "Worse")
    questions = tmp_path / "ten.jsonl"
    questions.write_text(questions_jsonl())
    out = io.StringIO()

    with pytest.raises(CommandError, match="significantly worse on .*must_include_rate"):
        call_command(
            "evaluate",
            "--questions",
            str(questions),
            "--assistant",
            "Worse",
            "--gate",
            str(baseline.pk),
            stdout=out,
        )

    # Six of twelve questions lost their code: 2 of the 2**6 sign patterns are as extreme.
    assert (
        "Worse: Must-include (must_include_rate) fell from 1.000 to 0.500 on 12 questions "
        "(p=0.0312, sign-flip)" in out.getvalue()
    )
    run = EvaluationRun.objects.exclude(pk=baseline.pk).get()
    gate = evaluation.evaluation_gate(run, baseline)
    assert "must_include_rate" in {r["metric"] for r in gate.regressions}
    assert "refusal_accuracy" not in {r["metric"] for r in gate.regressions}


def test_the_gate_passes_on_an_equal_run_against_the_assistants_baseline(
    manual, servers, baseline, tmp_path
):
    questions = tmp_path / "ten.jsonl"
    questions.write_text(questions_jsonl())
    out = io.StringIO()

    call_command(
        "evaluate", "--questions", str(questions), "--assistant", "Good", "--gate", "baseline",
        stdout=out,
    )  # fmt: skip

    assert f"Gate passed: no headline metric is significantly worse than run #{baseline.pk}" in (
        out.getvalue()
    )


def test_a_gate_with_nothing_in_common_is_refused_not_passed(manual, servers, baseline):
    other = run_now(
        [Assistant.objects.get(name="Good")],
        questions=[{"id": "new", "question": "What is the fact code 9?"}],
    )

    with pytest.raises(evaluation.GateError, match="answered no question in common"):
        evaluation.evaluation_gate(other, baseline)
    with pytest.raises(evaluation.GateError, match="cannot be its own baseline"):
        evaluation.evaluation_gate(baseline, baseline)


def test_the_api_sets_baselines_for_trainers_and_gates_a_run(
    client, partial_manual, servers, baseline, evaluator, reviewer
):
    worse = run_now([direct(partial_manual, servers["good"], "Worse")])
    client.force_login(reviewer)
    assert client.post(f"/api/evaluation-runs/{worse.pk}/baseline/").status_code == 403

    client.force_login(evaluator)
    gate = client.get(f"/api/evaluation-runs/{worse.pk}/gate/?baseline={baseline.pk}").json()
    assert gate["passed"] is False
    assert "must_include_rate" in {r["metric"] for r in gate["regressions"]}
    refused = client.get(f"/api/evaluation-runs/{worse.pk}/gate/")
    assert (
        refused.status_code == 400
        and "No baseline is set for Worse" in refused.json()["baseline"][0]
    )

    made = client.post(f"/api/evaluation-runs/{worse.pk}/baseline/")
    assert made.status_code == 200
    assert EvaluationBaseline.objects.get(assistant__name="Worse").run == worse


def test_the_report_shows_better_worse_and_same_against_the_baseline(
    client, partial_manual, servers, baseline, evaluator
):
    good = Assistant.objects.get(name="Good")
    # The same assistant now answers from the manual that lost two pages.
    good.manuals.set([partial_manual])
    again = run_now([good])
    client.force_login(evaluator)

    page = client.get(reverse("training:evaluation", args=[again.pk])).content.decode()

    section = page[page.index('id="baseline"') :]
    assert f"run #{baseline.pk}" in section and "worse on a headline metric" in section
    assert re.search(r'data-metric="must_include_rate">.*?verdict-worse">worse', section, re.S)
    assert re.search(r'data-metric="refusal_accuracy">.*?verdict-same">same', section, re.S)


def test_a_run_that_did_not_succeed_cannot_be_a_baseline(manual, servers, evaluator):
    good = direct(manual, servers["good"], "Good")
    run = evaluation.evaluation_run_create(
        user=None, enqueue=False, questions_jsonl=questions_jsonl(), assistants=[good]
    )

    with pytest.raises(ValidationError, match="only a run that succeeded can be a baseline"):
        evaluation.evaluation_baseline_set(run=run, user=evaluator)
    assert not EvaluationBaseline.objects.exists()


# --------------------------------------------------------------------------------------------
# The judge against people


def test_the_judge_is_checked_against_reviewers_and_owners_before_it_is_believed(
    client, manual, servers, evaluator
):
    now = timezone.now()
    labelled = [  # (status, answer): the judge calls right exactly the "Correct:" answers
        *[(QAPair.Status.APPROVED, f"Correct: detail {n}.") for n in range(4)],
        (QAPair.Status.APPROVED, "Nothing useful."),  # people: right, judge: wrong
        *[(QAPair.Status.REJECTED, f"Wrong detail {n}.") for n in range(3)],
        (QAPair.Status.REJECTED, "Correct: so it claims."),  # people: wrong, judge: right
        (QAPair.Status.PENDING, "Correct: not reviewed, so not counted."),
    ]
    for n, (status, answer) in enumerate(labelled):
        QAPair.objects.create(
            manual=manual,
            question=f"Labelled question {n}?",
            answer=answer,
            source_text="A passage.",
            question_hash=f"judge-{n}",
            original_question="-",
            original_answer="-",
            status=status,
            reviewed_at=None if status == QAPair.Status.PENDING else now,
        )
    good = direct(manual, servers["good"], "Good")
    conversation = Conversation.objects.create(session_key="owner-1", assistant=good)
    asked = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="How do I charge?"
    )
    answered = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        reply_to=asked,
        content="Correct: plug it in.",
    )
    Feedback.objects.create(message=answered, rating=Feedback.Rating.UP, session_key="owner-1")
    judge = endpoint(servers["judge"])

    run = run_now([good], judge_endpoint=judge)

    check = run.judge_check
    # People: 6 right (5 approved, the thumbs-up), 4 wrong. The judge agrees on 8 of 10:
    # chance agreement 0.6 * 0.6 + 0.4 * 0.4 = 0.52, so kappa = (0.8 - 0.52) / 0.48.
    assert check["n"] == 10 and check["sources"] == {"qa_pair": 9, "chat_answer": 1}
    assert check["accuracy"] == pytest.approx(0.8)
    assert check["kappa"] == pytest.approx(0.28 / 0.48)
    assert check["status"] == "thin"
    assert {d["people"] for d in check["disagreements"]} == {"right", "wrong"}
    # Its calls are counted with the run's judge tokens.
    assert run.judge_prompt_tokens > 0

    client.force_login(evaluator)
    page = client.get(reverse("training:evaluation", args=[run.pk])).content.decode()
    assert "agreement 80%, Cohen&#x27;s kappa 0.58 on 10 items" in page
    assert "Too few items" in page
    assert "Judge: correct" not in page[page.index('<svg id="metrics-chart"') :]
    export = client.get(reverse("training:evaluation_export", args=[run.pk, "json"])).json()
    assert export["judge_check"]["kappa"] == pytest.approx(0.28 / 0.48)
