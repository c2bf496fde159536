"""Evaluation runs through the real pipeline: the sample manual ingested and embedded in the
real PostgreSQL+pgvector, the chat's own answering, and loopback OpenAI-compatible servers
(``tests/fakeopenai.py``) as the generators and the judge.

The sample manual is ingested once for the module and committed (as the chat tests do); each
test still runs in its own transaction, so its runs, assistants and answers are rolled back.
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
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import services as chat_services
from chat.models import Assistant, Conversation
from curation import services as curation_services
from curation.models import LLMEndpoint, Manual
from manualqa import roles
from tests.conftest import SAMPLE_SITE
from tests.fakeopenai import FakeOpenAI
from training import evaluation, metrics
from training.models import EvaluationRun, TrainingJob

pytestmark = pytest.mark.django_db

_names = itertools.count(1)

# Five questions about the sample manual (ids from curation/sample_manual/questions.jsonl),
# with short reference answers written from its pages. q27 asks what the manual never speaks
# of (a trade-in's worth), so the chat declines it without a model; q26 reaches the model.
QUESTIONS = [
    {
        "id": "q02",
        "question": "what psi should my tires be? I have the 18 inch wheels",
        "answer": "42 PSI (290 kPa)",
        "sources": ["tires.html"],
        "must_include": ["42 PSI", "290 kPa"],
    },
    {
        "id": "q05",
        "question": "where is the 12 volt battery located on the Aster?",
        "answer": "Under the front trunk floor.",
        "sources": ["maintenance.html"],
        "must_include": ["under the front trunk floor"],
    },
    {
        "id": "q13",
        "question": "What percentage should I charge to for everyday use?",
        "answer": "80% for everyday use.",
        "sources": ["charging.html"],
        "must_include": ["80%"],
    },
    {
        "id": "q26",
        "question": "How much does it cost to insure a 2025 Aster in Ontario?",
        "kind": "unanswerable",
    },
    {
        "id": "q27",
        "question": "What will my Aster be worth as a trade-in after three years?",
        "kind": "unanswerable",
    },
]

# What the fake generator answers, by a word of the question.
ANSWERS = {
    "psi": "Set them to 42 PSI (290 kPa) [1].",
    "12 volt": "It is under the front trunk floor [1].",
    "percentage": "Charge to 90% [1].",
    "insure": "The manual does not say.",
}
JUDGE_REPLY = '{"correctness": 4, "faithfulness": 5}'


def questions_jsonl(questions=QUESTIONS) -> str:
    return "".join(json.dumps(question) + "\n" for question in questions)


def generator_and_judge(messages) -> str:
    """The fake model: grades when asked to judge, else answers the question it was asked."""
    prompt = messages[-1]["content"]
    if prompt.startswith("You are grading"):
        return JUDGE_REPLY
    question = prompt.rsplit("Question:", 1)[-1].lower()
    for word, answer in ANSWERS.items():
        if word in question:
            return answer
    return "I could not find that in the manual."


@pytest.fixture(scope="module")
def sample_manual(django_db_setup, django_db_blocker) -> Iterator[Manual]:
    """The bundled sample manual's pages, ingested and embedded (committed for the module)."""
    with django_db_blocker.unblock():
        manual = curation_services.manual_get_or_create(name="Evaluation sample manual")
        run = curation_services.ingestion_run_create(
            manual=manual, source=str(SAMPLE_SITE / "manual"), enqueue=False
        )
        curation_services.ingestion_run_execute(run_id=run.pk)
    yield manual
    with django_db_blocker.unblock():
        Manual.objects.filter(pk=manual.pk).delete()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(generator_and_judge) as server:
        yield server


def endpoint(fake: FakeOpenAI, **overrides) -> LLMEndpoint:
    fields = {
        "name": f"Fake {next(_names)}",
        "kind": LLMEndpoint.Kind.OPENAI,
        "model": "fake-model",
        "base_url": fake.base_url,
        "temperature": 0.0,
        "max_tokens": 100,
        "max_retries": 0,
        "timeout_s": 10,
    }
    return LLMEndpoint.objects.create(**{**fields, **overrides})


def assistant(manual: Manual, **fields) -> Assistant:
    """An assistant whose answers are the fake model's (verified) text."""
    fields.setdefault("name", f"Assistant {next(_names)}")
    fields.setdefault("answer_style", Assistant.AnswerStyle.GENERATED)
    return chat_services.assistant_create(manuals=[manual], **fields)


def run_now(**options) -> EvaluationRun:
    """Create, claim and execute a run in this process, as ``manage.py evaluate`` does."""
    options.setdefault("user", None)
    run = evaluation.evaluation_run_create(enqueue=False, **options)
    assert evaluation.evaluation_run_claim(run_id=run.pk)
    return evaluation.evaluation_run_execute(run_id=run.pk)


@pytest.fixture
def evaluator(db) -> User:
    """A Trainer: may view training and launch jobs and evaluations."""
    roles.roles_ensure()
    user = User.objects.create_user("evaluator", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.TRAINER_GROUP))
    return user


# --------------------------------------------------------------------------------------------
# Answers and their metrics


@pytest.fixture
def judged_run(sample_manual, fake) -> EvaluationRun:
    """A RAG and a direct assistant on the five questions, judged by the same fake."""
    model = endpoint(fake)
    assistant(sample_manual, name="RAG", mode=Assistant.Mode.RAG, endpoint=model)
    assistant(sample_manual, name="Direct", mode=Assistant.Mode.DIRECT, endpoint=model)
    judge = endpoint(
        fake, name="Judge", model="judge-model", price_in_per_1k=0.5, price_out_per_1k=1.5
    )
    return run_now(
        questions_jsonl=questions_jsonl(),
        questions_name="five.jsonl",
        assistants=Assistant.objects.filter(name__in=["RAG", "Direct"]),
        judge_endpoint=judge,
    )


def test_every_assistant_answers_every_question_and_each_answer_is_stored(judged_run):
    assert judged_run.status == EvaluationRun.Status.SUCCEEDED, judged_run.message
    assert (judged_run.done, judged_run.total) == (10, 10)
    items = judged_run.items.all()
    assert sorted((item.subject, item.question_id) for item in items) == sorted(
        (subject, question["id"]) for subject in ("RAG", "Direct") for question in QUESTIONS
    )
    rag_psi = items.get(subject="RAG", question_id="q02")
    assert rag_psi.answer == "Set them to 42 PSI (290 kPa) [1]."
    assert rag_psi.latency_ms > 0 and rag_psi.prompt_tokens > 0 and rag_psi.completion_tokens
    assert rag_psi.cited_sources and not rag_psi.error


def test_answer_metrics_match_hand_computed_values(judged_run):
    rag = {item.question_id: item.metrics for item in judged_run.items.filter(subject="RAG")}

    # "Set them to 42 PSI (290 kPa) [1]." -> set them to 42 psi 290 kpa 1 (8 tokens) against
    # 42 psi 290 kpa (4): 4 shared, P = 1/2, R = 1, F1 = 2/3; the LCS is the same 4 tokens.
    assert rag["q02"]["token_f1"] == pytest.approx(2 / 3)
    assert rag["q02"]["rouge_l"] == pytest.approx(2 / 3)
    assert rag["q02"]["must_include_rate"] == 1.0
    # "It is under the front trunk floor [1]." -> 7 tokens ("the" dropped) against 4, all 4
    # shared: P = 4/7, R = 1, F1 = 8/11.
    assert rag["q05"]["token_f1"] == pytest.approx(8 / 11)
    # The model's "Charge to 90% [1]." is not what the manual says: verification cut it, and
    # the owner read the manual's own sentence, which holds the 80%.
    q13 = judged_run.items.get(subject="RAG", question_id="q13")
    assert "90%" not in q13.answer and "80%" in q13.answer
    assert rag["q13"]["must_include_rate"] == 1.0
    assert rag["q13"]["model_supported_rate"] == 0.0
    assert rag["q13"]["supported_sentence_rate"] == 1.0
    assert rag["q13"]["token_f1"] > 0
    # Judge-free checks of every answer: words, no loops, every sentence supported.
    assert rag["q02"]["answer_words"] == 8 and rag["q02"]["loops"] == 0
    assert rag["q02"]["supported_sentence_rate"] == rag["q02"]["model_supported_rate"] == 1.0
    # Semantic similarity is the cosine of the two embeddings: in 0..1.
    assert 0 < rag["q13"]["semantic_similarity"] <= 1 and rag["q02"]["semantic_similarity"] > 0
    # Unanswerable questions have no reference: no F1, only the refusal.
    assert "token_f1" not in rag["q26"] and rag["q26"]["refused"] is True
    assert rag["q27"]["refused"] is True and rag["q27"]["unanswerable"] is True
    assert all(rag[q]["refused"] is False for q in ("q02", "q05", "q13"))


def test_the_summary_aggregates_each_assistant_and_leaves_out_what_does_not_apply(judged_run):
    rag, direct = judged_run.summary["RAG"], judged_run.summary["Direct"]

    items = {i.question_id: i.metrics for i in judged_run.items.filter(subject="RAG")}
    assert rag["token_f1"] == pytest.approx((2 / 3 + 8 / 11 + items["q13"]["token_f1"]) / 3)
    assert rag["must_include_rate"] == 1.0  # the invented figure was cut, the quote holds 80%
    # Of the model's three answers, one sentence was unsupported: q13's, cut.
    assert rag["model_supported_rate"] == pytest.approx(2 / 3)
    assert rag["supported_sentence_rate"] == 1.0 and rag["loop_rate"] == 0.0
    answer_words = sorted(items[q]["answer_words"] for q in ("q02", "q05", "q13"))
    assert rag["answer_words"] == answer_words[1]  # the median over answerable questions
    assert rag["refusal_accuracy"] == 1.0  # q26 said so, q27 was declined before the model
    assert rag["false_refusal_rate"] == 0.0
    # The right page is in the top 5 documents for all three (measured: top 1 for all).
    assert rag["hit@5"] == 1.0 and 0 < rag["mrr"] <= 1
    for key in ("hit@1", "hit@3", "context_recall", "citation_hit_rate", "semantic_similarity"):
        assert key in rag
    for key in ("latency_p50_ms", "latency_p95_ms", "prompt_tokens", "completion_tokens"):
        assert rag[key] > 0
    assert rag["count"] == 5 and rag["errors"] == 0
    # A direct assistant retrieves nothing into its prompt: no retrieval or citation metrics.
    assert not {"hit@1", "hit@3", "hit@5", "mrr", "citation_hit_rate"} & set(direct)
    assert direct["token_f1"] == pytest.approx(rag["token_f1"])  # the fake answers the same


def test_the_judge_grades_answers_and_its_prompt_model_and_cost_are_kept(judged_run, fake):
    judge_requests = [
        r for r in fake.chat_requests() if r["body"]["messages"][-1]["content"].startswith("You")
    ]
    assert len(judge_requests) == 10  # every answer, declines included
    assert judged_run.judge_prompt == evaluation.DEFAULT_JUDGE_PROMPT
    assert judged_run.judge_model == "judge-model"
    assert {r["body"]["model"] for r in judge_requests} == {"judge-model"}
    # The fake counts a token per word or punctuation mark; the cost is the endpoint's prices
    # per 1k tokens on the tokens the run counted.
    tokens_in, tokens_out = judged_run.judge_prompt_tokens, judged_run.judge_completion_tokens
    assert tokens_out == 10 * 13  # { " correctness " : 4 , " faithfulness " : 5 }
    assert judged_run.judge_cost == pytest.approx(tokens_in / 1000 * 0.5 + tokens_out / 1000 * 1.5)
    # 4 on 1-5 is 0.75, 5 is 1.0; faithfulness only where passages were given (RAG).
    assert judged_run.summary["RAG"]["judge_correctness"] == 0.75
    assert judged_run.summary["RAG"]["judge_faithfulness"] == 1.0
    assert "judge_faithfulness" not in judged_run.summary["Direct"]
    rag_prompt = next(r for r in judge_requests if "[1] " in r["body"]["messages"][-1]["content"])
    assert "Set them to 42 PSI" in rag_prompt["body"]["messages"][-1]["content"] or rag_prompt


def test_evaluation_answers_belong_to_the_runs_own_session_not_to_any_owner(judged_run):
    session = f"evaluation-run-{judged_run.pk}"

    conversations = Conversation.objects.filter(session_key=session)
    assert conversations.count() == 10  # a fresh conversation per answer: no shared history
    assert not conversations.filter(owner__isnull=False).exists()
    item = judged_run.items.get(subject="RAG", question_id="q02")
    assert conversations.filter(messages__pk=item.chat_message_id).exists()


def test_the_chat_rate_limit_does_not_hold_back_an_evaluation(sample_manual, fake, settings):
    settings.CHAT_RATE_LIMIT = "1/day"
    rag = assistant(sample_manual, endpoint=endpoint(fake))

    run = run_now(questions_jsonl=questions_jsonl(QUESTIONS[:3]), assistants=[rag])

    assert run.status == EvaluationRun.Status.SUCCEEDED
    assert not run.items.exclude(error="").exists()


def test_a_failing_generator_is_recorded_per_answer_and_fails_the_run(sample_manual, fake):
    fake.fail_next(10, status=400, body="model not loaded")
    rag = assistant(sample_manual, endpoint=endpoint(fake))

    run = run_now(questions_jsonl=questions_jsonl(QUESTIONS[:2]), assistants=[rag])

    assert run.status == EvaluationRun.Status.FAILED
    # Staff read the failure's detail, not the reference an owner would get.
    assert run.message.startswith("Every answer failed; the first said: HTTP 400 from")
    item = run.items.get(question_id="q02")
    assert item.answer == "" and "400" in item.error
    # A failed answer is a wrong answer, and counts among the errors; it has no latency.
    assert item.metrics["token_f1"] == 0.0 and item.metrics["must_include_rate"] == 0.0
    assert run.summary[rag.name]["errors"] == 2
    assert "latency_p50_ms" not in run.summary[rag.name]


def test_the_test_split_of_a_snapshot_is_a_question_set_with_reference_answers(sample_manual, fake):
    from curation.models import QAPair
    from training import services as training_services

    chunks = sample_manual.documents.get(source_name="tires.html").chunks.order_by("position")
    pairs = [
        QAPair.objects.create(
            manual=sample_manual,
            document=chunk.document,
            chunk=chunk,
            question=f"What does the tires page say, part {index}?",
            answer=f"It says part {index}.",
            question_hash=f"h{index}",
            original_question="-",
            original_answer="-",
            status=QAPair.Status.APPROVED,
        )
        for index, chunk in enumerate(chunks)
    ]
    snapshot = training_services.snapshot_create(
        manual=sample_manual,
        user=None,
        train_fraction=0.01,
        eval_fraction=0.0,
        test_fraction=0.99,
    )
    test_pairs = snapshot.pairs.filter(split="test")
    assert test_pairs.exists(), "the split put every section in train; change the seed"
    direct = assistant(sample_manual, mode=Assistant.Mode.DIRECT, endpoint=endpoint(fake))

    run = run_now(snapshot=snapshot, assistants=[direct])

    assert run.question_source == EvaluationRun.QuestionSource.SNAPSHOT
    item = run.items.order_by("position").first()
    pair = test_pairs.order_by("id").first()
    assert (item.question, item.reference, item.sources) == (
        pair.question,
        pair.answer,
        ["tires.html"],
    )
    assert item.question_id == f"pair-{pair.qa_pair_id}"
    assert item.metrics["token_f1"] == pytest.approx(metrics.token_f1(item.answer, pair.answer))
    assert len(pairs) >= run.items.count() == test_pairs.count()


# --------------------------------------------------------------------------------------------
# Retrieval only


def test_retrieval_only_over_a_manual_needs_no_assistant_and_no_generator(
    sample_manual, tmp_path, capsys
):
    questions = tmp_path / "sample.jsonl"
    questions.write_text(
        (SAMPLE_SITE.parent / "questions.jsonl").read_text(encoding="utf-8"), encoding="utf-8"
    )
    out = tmp_path / "result.json"

    call_command(
        "evaluate",
        questions=str(questions),
        manual=sample_manual.name,
        retrieval_only=True,
        json_out=str(out),
    )

    result = json.loads(out.read_text())
    label = "Evaluation sample manual (default retrieval)"
    summary = result["summary"][label]
    # Measured on the 24 answerable questions: the right page first for 21 (hit@1 0.875, MRR
    # 0.931), in the top 3 for all (documents, not chunks); the chat's retrieval tests measure
    # the same retrieval.
    assert summary["hit@5"] == 1.0 and summary["hit@1"] >= 0.85 and summary["mrr"] >= 0.9
    # Declining is the chat's decision before it quotes (the similarity gate, then the key
    # terms, product, loan car, price and unit checks): all four unanswerable questions (q28,
    # a dealer's loaner car, by the loan-car check), none of the answerable ones.
    assert summary["refusal_accuracy"] == 1.0 and summary["false_refusal_rate"] == 0.0
    assert summary["count"] == 28 and summary["latency_p50_ms"] > 0
    for key in ("token_f1", "rouge_l", "semantic_similarity", "must_include_rate"):
        assert key not in summary  # no answers, so no answer metrics
    assert summary["context_recall"] > 0.8  # measured 1.0: what an answer needs is in the top 4
    assert len(result["items"]) == 28
    first = result["items"][0]
    assert first["question_id"] == "q01" and first["retrieved_sources"][0] == "charging.html"
    assert first["answer"] == "" and first["metrics"]["rank"] == 1
    printed = capsys.readouterr().out
    assert "hit@1" in printed and label in printed
    assert not Conversation.objects.exists()  # no generator ran


def test_retrieval_only_measures_each_assistants_own_retrieval(sample_manual):
    hybrid = assistant(sample_manual, name="Hybrid", retrieval="hybrid", match_questions=False)

    run = run_now(
        questions_jsonl=questions_jsonl(QUESTIONS[:3]),
        assistants=[hybrid],
        manual=sample_manual,
        retrieval_only=True,
    )

    assert list(run.summary) == ["Hybrid", "Evaluation sample manual (default retrieval)"]
    assert run.summary["Hybrid"]["hit@5"] == 1.0
    assert run.items.filter(subject="Hybrid").count() == 3
    assert set(run.items.values_list("assistant", flat=True)) == {hybrid.pk, None}


# --------------------------------------------------------------------------------------------
# Refusals: nothing is stored


def test_a_bad_question_file_is_refused_naming_the_line_and_nothing_is_stored(sample_manual):
    bad = questions_jsonl(QUESTIONS[:2]) + '{"question": "Why?", "kind": "maybe?"}\nnot json\n'

    with pytest.raises(ValidationError) as caught:
        evaluation.evaluation_run_create(
            user=None, questions_jsonl=bad, manual=sample_manual, retrieval_only=True
        )

    assert caught.value.message_dict["questions"] == [
        "Line 3: the kind 'maybe?' is not a short label (up to 20 letters, digits, \"_\", "
        '"-" or spaces, such as "fact" or "unanswerable").',
        "Line 4: not valid JSON (Expecting value).",
    ]
    assert not EvaluationRun.objects.exists()


def test_the_command_refuses_bad_input_with_the_line_number(sample_manual, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok?"}\n{"answer": "no question"}\n')

    with pytest.raises(CommandError, match='questions: Line 2: it has no "question"'):
        call_command(
            "evaluate", questions=str(path), manual=sample_manual.name, retrieval_only=True
        )
    assert not EvaluationRun.objects.exists()


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({}, "assistants", "Choose at least one assistant"),
        ({"with_manual": True}, "manual", "A manual alone has no generator"),
        (
            {"with_manual": True, "retrieval_only": True, "with_judge": True},
            "judge_endpoint",
            "a retrieval-only run has none",
        ),
    ],
)
def test_a_run_that_cannot_work_is_refused_before_it_is_queued(
    sample_manual, fake, options, field, message
):
    kwargs = {"user": None, "questions_jsonl": questions_jsonl(QUESTIONS[:1])}
    if options.get("with_manual"):
        kwargs["manual"] = sample_manual
    if options.get("with_judge"):
        kwargs["judge_endpoint"] = endpoint(fake)
    kwargs["retrieval_only"] = options.get("retrieval_only", False)

    with pytest.raises(ValidationError) as caught:
        evaluation.evaluation_run_create(**kwargs)

    assert any(m.startswith(message) or message in m for m in caught.value.message_dict[field])
    assert not EvaluationRun.objects.exists()


def test_a_judge_prompt_without_an_answer_placeholder_is_refused(sample_manual, fake):
    rag = assistant(sample_manual, endpoint=endpoint(fake))

    with pytest.raises(ValidationError, match=r"needs an \{answer\} placeholder"):
        evaluation.evaluation_run_create(
            user=None,
            questions_jsonl=questions_jsonl(QUESTIONS[:1]),
            assistants=[rag],
            judge_endpoint=endpoint(fake),
            judge_prompt="Is this good? {question}",
        )


# --------------------------------------------------------------------------------------------
# Claims, cancels and resumes


def queued_retrieval_run(manual: Manual) -> EvaluationRun:
    """A queued retrieval-only run over ``manual`` on one question, not sent to a worker."""
    return evaluation.evaluation_run_create(
        user=None,
        questions_jsonl=questions_jsonl(QUESTIONS[:1]),
        manual=manual,
        retrieval_only=True,
        enqueue=False,
    )


def test_a_run_is_claimed_once(sample_manual):
    run = queued_retrieval_run(sample_manual)

    assert evaluation.evaluation_run_claim(run_id=run.pk, task_id="one") is True
    assert evaluation.evaluation_run_claim(run_id=run.pk, task_id="two") is False
    run.refresh_from_db()
    assert (run.status, run.celery_task_id) == (EvaluationRun.Status.RUNNING, "one")


def test_a_queued_run_cancels_at_once_and_a_running_one_stops_before_its_next_answer(
    sample_manual,
):
    options = {
        "user": None,
        "questions_jsonl": questions_jsonl(QUESTIONS[:3]),
        "manual": sample_manual,
        "retrieval_only": True,
        "enqueue": False,
    }
    queued = evaluation.evaluation_run_create(**options)
    assert evaluation.evaluation_run_cancel(run=queued, user=None).status == "cancelled"
    assert evaluation.evaluation_run_claim(run_id=queued.pk) is False

    running = evaluation.evaluation_run_create(**options)
    evaluation.evaluation_run_claim(run_id=running.pk)
    evaluation.evaluation_run_cancel(run=running, user=None)
    running = evaluation.evaluation_run_execute(run_id=running.pk)

    assert running.status == EvaluationRun.Status.CANCELLED
    assert running.message == "Cancelled after 0 of 3 answers."
    with pytest.raises(ValidationError, match="already cancelled"):
        evaluation.evaluation_run_cancel(run=running, user=None)


def test_a_reclaimed_run_continues_without_asking_stored_questions_again(
    sample_manual, fake, settings
):
    rag = assistant(sample_manual, endpoint=endpoint(fake))
    run = run_now(questions_jsonl=questions_jsonl(QUESTIONS[:3]), assistants=[rag])
    first = {item.position: item.pk for item in run.items.all()}
    # As if the worker died after the first answer: the others are gone, the heartbeat is old.
    run.items.exclude(position=0).delete()
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=EvaluationRun.Status.RUNNING, heartbeat_at="2000-01-01T00:00:00Z"
    )
    asked = len(fake.chat_requests())

    assert evaluation.evaluation_run_claim(run_id=run.pk) is True
    run = evaluation.evaluation_run_execute(run_id=run.pk)

    assert run.status == EvaluationRun.Status.SUCCEEDED and run.done == 3
    assert run.items.get(position=0).pk == first[0]
    assert len(fake.chat_requests()) - asked == 2


def test_a_run_whose_worker_stopped_beating_reads_as_failed(sample_manual):
    run = queued_retrieval_run(sample_manual)
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=EvaluationRun.Status.RUNNING, heartbeat_at="2000-01-01T00:00:00Z"
    )

    assert evaluation.evaluation_runs_fail_stale() == 1
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED
    assert "stopped sending heartbeats" in run.message


# --------------------------------------------------------------------------------------------
# Pages


def test_a_trainer_launches_an_evaluation_from_an_uploaded_file(
    client, evaluator, sample_manual, django_capture_on_commit_callbacks
):
    client.force_login(evaluator)
    upload = io.BytesIO(questions_jsonl(QUESTIONS[:2]).encode())
    upload.name = "two.jsonl"

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("training:evaluation_launch"),
            {"questions_file": upload, "manual": sample_manual.pk, "retrieval_only": "on"},
        )

    run = EvaluationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("training:evaluation", args=[run.pk])
    assert (run.status, run.total, run.questions_name) == ("queued", 2, "two.jsonl")
    assert run.created_by == evaluator
    assert len(callbacks) == 1  # the task is queued once the transaction commits


def test_the_launch_form_shows_the_line_of_a_bad_file_and_stores_nothing(
    client, evaluator, sample_manual
):
    client.force_login(evaluator)
    upload = io.BytesIO(b'{"question": "ok?"}\n{"question": 3}\n')
    upload.name = "bad.jsonl"

    response = client.post(
        reverse("training:evaluation_launch"),
        {"questions_file": upload, "manual": sample_manual.pk, "retrieval_only": "on"},
    )

    assert response.status_code == 200
    assert "Line 2: it has no &quot;question&quot;" in response.content.decode()
    assert not EvaluationRun.objects.exists()


def test_only_trainers_launch_evaluations(client, sample_manual):
    roles.roles_ensure()
    reviewer = User.objects.create_user("only-reviewer", password="pw-123456")
    reviewer.groups.add(Group.objects.get(name=roles.REVIEWER_GROUP))
    launch = reverse("training:evaluation_launch")

    assert client.get(launch).status_code == 302  # anonymous: to the sign-in page
    client.force_login(reviewer)
    assert client.get(launch).status_code == 403
    assert client.get(reverse("training:evaluations")).status_code == 403


def test_the_run_page_cancels_and_sets_baselines_saying_what_it_did_or_why_not(
    client, evaluator, sample_manual, judged_run
):
    client.force_login(evaluator)
    queued = queued_retrieval_run(sample_manual)
    cancel = reverse("training:evaluation_cancel", args=[queued.pk])
    page = reverse("training:evaluation", args=[queued.pk])

    first = client.post(cancel, follow=True)
    again = client.post(cancel, follow=True)
    baseline = client.post(
        reverse("training:evaluation_baseline", args=[judged_run.pk]), follow=True
    )

    assert first.redirect_chain == [(page, 302)]
    assert [str(m) for m in first.context["messages"]] == ["Cancelled."]
    assert [str(m) for m in again.context["messages"]] == ["The evaluation is already cancelled."]
    said = [str(m) for m in baseline.context["messages"]]
    assert said == [f"Run #{judged_run.pk} is now the baseline of Direct, RAG."] or said == [
        f"Run #{judged_run.pk} is now the baseline of RAG, Direct."
    ]
    assert EvaluationRun.objects.get(pk=queued.pk).status == "cancelled"


def test_the_report_marks_only_significant_winners_draws_the_chart_and_puts_failures_first(
    client, evaluator, judged_run
):
    client.force_login(evaluator)

    response = client.get(reverse("training:evaluation", args=[judged_run.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    table = page[page.index('id="summary-table"') : page.index("</table>")]
    assert re.search(r'<th scope="row">RAG</th>', table) and "Direct" in table
    assert 'data-metric="hit@5"' in table  # RAG's retrieval columns
    # Both assistants have the same F1 (the fake answers alike): no winner is starred, and
    # the comparison says there is no detectable difference.
    assert 'data-metric="token_f1" class="best"' not in table
    comparisons = page[page.index('id="comparisons"') :]
    assert re.search(r'data-metric="token_f1">.*?no detectable difference', comparisons, re.S)
    # Every mean has its 95% interval under it.
    assert re.search(r'data-metric="token_f1">0\.\d{3}<span class="ci"', table)
    # No person has judged anything here, so the judge is unchecked and out of the chart.
    assert "has not been checked against people" in page
    assert "Judge: correct" not in page[page.index('<svg id="metrics-chart"') :]
    assert '<svg id="metrics-chart"' in page and 'class="bar"' in page
    # The chart is drawn in the page: nothing is loaded from another host (a CSRF token may
    # happen to spell "cdn", so look at the URLs rather than the text).
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    # q13 (the model invented a figure, cut from both answers) comes before q02 (right).
    assert page.index("recommends a charge limit of 80%") < page.index("Set them to 42 PSI")
    assert "the model wrote sentences the manual does not support (cut)" in page
    # The judge-free checks have their columns.
    for key in ("supported_sentence_rate", "model_supported_rate", "loop_rate", "answer_words"):
        assert f'data-metric="{key}"' in table


def test_the_report_exports_csv_and_json(client, evaluator, judged_run):
    client.force_login(evaluator)

    as_csv = client.get(reverse("training:evaluation_export", args=[judged_run.pk, "csv"]))
    as_json = client.get(reverse("training:evaluation_export", args=[judged_run.pk, "json"]))

    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert len(rows) == 10
    psi = next(r for r in rows if r["assistant"] == "RAG" and r["question_id"] == "q02")
    assert float(psi["token_f1"]) == pytest.approx(2 / 3)
    assert float(psi["supported_sentence_rate"]) == 1.0
    assert (psi["loops"], psi["answer_words"]) == ("0", "8")
    body = json.loads(as_json.content)
    assert set(body) >= {"summary", "items"} and body["summary"] == judged_run.summary
    assert (
        as_json["Content-Disposition"] == f'attachment; filename="evaluation-{judged_run.pk}.json"'
    )


def test_csv_export_neutralises_formulas(client, evaluator, judged_run):
    item = judged_run.items.order_by("position", "id").first()
    item.question = '=HYPERLINK("https://evil.example","tyres")'
    item.answer = "+1 then @SUM(A1)"
    item.save(update_fields=["question", "answer"])
    client.force_login(evaluator)

    as_csv = client.get(reverse("training:evaluation_export", args=[judged_run.pk, "csv"]))

    first = list(csv.DictReader(io.StringIO(as_csv.content.decode())))[0]
    assert first["question"] == '\'=HYPERLINK("https://evil.example","tyres")'
    assert first["answer"] == "'+1 then @SUM(A1)"
    assert float(first["token_f1"]) >= 0  # numbers stay numbers


def test_the_job_page_links_to_the_evaluations_of_its_model(client, evaluator, judged_run, fake):
    from tests.training.conftest import add_pairs, build_manual
    from training import services as training_services

    manual = build_manual("Job manual")
    add_pairs(manual)
    snapshot = training_services.snapshot_create(manual=manual, user=None)
    model = LLMEndpoint.objects.get(name="Judge")  # stands in for the job's registered model
    job = TrainingJob.objects.create(
        name="Tuned", snapshot=snapshot, status="succeeded", registered_endpoint=model
    )
    tuned = Assistant.objects.get(name="Direct")
    Assistant.objects.filter(pk=tuned.pk).update(endpoint=model)
    client.force_login(evaluator)

    job_page = client.get(reverse("training:job", args=[job.pk])).content.decode()
    listing = client.get(reverse("training:evaluations") + f"?job={job.pk}").content.decode()
    launch = client.get(reverse("training:evaluation_launch") + f"?job={job.pk}").content.decode()

    assert f'href="{reverse("training:evaluations")}?job={job.pk}"' in job_page
    assert f'href="{reverse("training:evaluation", args=[judged_run.pk])}"' in listing
    assert re.search(rf'value="{tuned.pk}"[^>]*checked', launch)


# --------------------------------------------------------------------------------------------
# API and admin


def test_the_api_reads_runs_and_their_answers(client, evaluator, judged_run):
    client.force_login(evaluator)

    run = client.get(f"/api/evaluation-runs/{judged_run.pk}/").json()
    items = client.get(f"/api/evaluation-runs/{judged_run.pk}/items/").json()

    assert run["summary"]["RAG"]["hit@5"] == 1.0 and run["judge_model"] == "judge-model"
    assert items["count"] == 10 and items["results"][0]["metrics"]
    assert client.post("/api/evaluation-runs/", {}).status_code in (403, 405)


def test_the_api_refuses_users_without_the_trainer_role(client, judged_run):
    plain = User.objects.create_user("plain", password="pw-123456")
    client.force_login(plain)

    assert client.get("/api/evaluation-runs/").status_code == 403


def test_the_admin_lists_of_runs_and_answers_take_a_constant_number_of_queries(
    client, judged_run, sample_manual
):
    admin_user = User.objects.create_superuser("root", password="pw-123456")
    client.force_login(admin_user)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    runs_url = reverse("admin:training_evaluationrun_changelist")
    items_url = reverse("admin:training_evaluationitem_changelist")
    before = (queries(runs_url), queries(items_url))
    run_now(
        questions_jsonl=questions_jsonl(QUESTIONS[:3]),
        manual=sample_manual,
        retrieval_only=True,
    )

    assert (queries(runs_url), queries(items_url)) == before
    assert client.get(reverse("admin:training_evaluationrun_change", args=[judged_run.pk]))
