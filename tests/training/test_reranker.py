"""The cross-encoder reranker (issue 18): trained on a snapshot of the sample manual's pairs for
a few steps, registered, and used by an assistant to reorder passages and to decline.

A reranker trained for two steps ranks passages no better than chance; the assertions follow
from the scores it gives, whatever they are: the passages come in the order of their scores,
and a question is declined exactly when its best score is under the threshold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from chat import services as chat_services
from chat.models import Assistant
from chat.owners import Owner
from chat.retrieval import retrieve
from curation.models import Manual, RetrievalModel
from manualqa.lib.reranking import CrossEncoderScorer, RerankerError, load_scorer
from tests.chat.conftest import sample_manual  # noqa: F401 - the module's manual
from tests.training.conftest import add_pairs
from tests.training.retriever_support import owner_question_set
from training import retrieval_jobs
from training import services as training_services
from training.models import DatasetSnapshot, SnapshotPair
from training.retrievers import Stopped
from training.retrievers import reranker as trainer

TINY = {
    "max_steps": 2,
    "batch_size": 4,
    "max_length": 128,
    "candidates": 4,
    "hard_negatives": 1,
    "random_negatives": 1,
    "eval_questions": 4,
}


@pytest.fixture(scope="module")
def trained(sample_manual, django_db_blocker, tmp_path_factory) -> Iterator[dict]:  # noqa: F811
    """A snapshot of one approved pair per chunk of the sample manual, a reranker trained on
    it for two steps, and what ``progress`` was told (committed for the module)."""
    with django_db_blocker.unblock():
        add_pairs(sample_manual, per_chunk=1)
        snapshot = training_services.snapshot_create(manual=sample_manual, user=None)
        calls = []
        output = tmp_path_factory.mktemp("reranker") / "model"
        model = trainer.train(
            snapshot,
            base_model="",
            hyperparameters=TINY,
            output_dir=output,
            progress=lambda step, total, loss: calls.append((step, total, loss)),
            should_stop=lambda: False,
        )
    yield {"snapshot": snapshot, "model": model, "progress": calls}
    with django_db_blocker.unblock():
        DatasetSnapshot.objects.filter(pk=snapshot.pk).delete()


def split_ids(snapshot: DatasetSnapshot, split: str) -> set[int]:
    return set(
        SnapshotPair.objects.filter(snapshot=snapshot, split=split).values_list("id", flat=True)
    )


@pytest.mark.django_db
def test_it_trains_on_train_chooses_its_threshold_on_eval_and_never_reads_test(trained):
    snapshot, model = trained["snapshot"], trained["model"]
    info = json.loads((model.path / "training.json").read_text())
    train, eval_, test = (split_ids(snapshot, s) for s in ("train", "eval", "test"))
    assert train and eval_ and test
    assert set(info["train_pair_ids"]) == train
    assert info["threshold_split"] == "eval"
    assert set(info["threshold_pair_ids"]) <= eval_
    assert len(info["threshold_pair_ids"]) == min(TINY["eval_questions"], len(eval_))
    assert not (set(info["train_pair_ids"]) | set(info["threshold_pair_ids"])) & test
    # Each train question gives a positive, a random negative and, where retrieval finds a
    # passage of another page among its best four, a hard one.
    metrics = model.metrics
    assert metrics["train_positive"] == metrics["train_random"] == len(train)
    assert 0 < metrics["train_hard"] <= len(train)
    assert model.train_examples == len(train) * 2 + metrics["train_hard"]
    assert model.steps == 2
    assert [step for step, _, _ in trained["progress"]] == [0, 1, 2]
    assert model.metrics["eval_questions"] == len(info["threshold_pair_ids"])
    assert 0.0 <= model.decline_below <= 1.0
    assert (model.path / "config.json").is_file()


@pytest.mark.django_db
def test_the_threshold_declines_at_most_the_allowed_share_of_eval_questions():
    scores = [0.9, 0.2, 0.8, 0.7, 0.6, 0.95, 0.85, 0.75, 0.65, 0.55] * 2
    threshold = trainer.choose_threshold(scores, 0.1)
    # 20 answerable questions, 10% may be declined: the two at 0.2 are, no other.
    assert threshold == 0.55
    assert sum(score < threshold for score in scores) == 2
    assert trainer.choose_threshold(scores, 0.0) == 0.2


@pytest.mark.django_db
def test_a_saved_owner_question_set_holds_the_threshold_to_its_refusal_share(
    trained,
    sample_manual,  # noqa: F811
):
    snapshot, model = trained["snapshot"], trained["model"]
    owner_question_set(sample_manual)
    questions = trainer._threshold_questions("retriever-sample-owners", snapshot)
    # The set's 24 answerable questions; its unanswerable ones are not held to anything.
    assert len(questions) == 24
    scorer = CrossEncoderScorer(model.path, max_length=TINY["max_length"])
    metrics: dict = {}
    held = trainer.hold_threshold(
        scorer, questions, snapshot.manual_id, 1.0, k=4, max_refusals=0.25, metrics=metrics
    )
    assert held <= 1.0
    # At most a quarter of the set's questions would be declined: their best score is under it.
    assert metrics["question_set_questions"] == 24
    assert metrics["question_set_false_refusal_rate"] <= 0.25
    assert metrics["threshold_from_eval"] == 1.0
    assert metrics["question_set_refusals_at_eval_threshold"] == 1.0  # every score is < 1.0
    # A lower threshold is kept: the set only ever lowers it.
    assert (
        trainer.hold_threshold(
            scorer, questions, snapshot.manual_id, -1.0, k=4, max_refusals=0.25, metrics={}
        )
        == -1.0
    )


@pytest.mark.django_db
def test_a_threshold_question_set_that_cannot_serve_is_refused_by_name(
    trained,
    sample_manual,  # noqa: F811
):
    snapshot = trained["snapshot"]
    with pytest.raises(ValueError, match="no saved question set 'nowhere'"):
        trainer._threshold_questions("nowhere", snapshot)
    other = Manual.objects.create(name="Another manual")
    question_set = owner_question_set(sample_manual)
    question_set.manual = other
    question_set.save()
    with pytest.raises(ValueError, match="of another manual"):
        trainer._threshold_questions(question_set.slug, snapshot)
    with pytest.raises(ValueError, match="threshold_question_set must be"):
        trainer._hyperparameters({"threshold_question_set": 3})
    # A launch is refused at once, before any example is built.
    with pytest.raises(ValidationError, match="no saved question set 'nowhere'"):
        retrieval_jobs.retrieval_job_create(
            snapshot=snapshot,
            user=None,
            kind="reranker",
            hyperparameters={"threshold_question_set": "nowhere"},
            enqueue=False,
        )
    assert (
        trainer.hyperparameters_check({"threshold_question_set": question_set.slug})[
            "threshold_question_set"
        ]
        == question_set.slug
    )


@pytest.mark.django_db
def test_an_assistant_with_the_reranker_orders_passages_by_its_scores_and_declines_below_it(
    trained,
    sample_manual,  # noqa: F811
):
    registered = trainer.register(trained["model"], "Sample reranker")
    assert registered.kind == RetrievalModel.Kind.RERANKER
    assert registered.decline_below == trained["model"].decline_below
    scorer = load_scorer(registered.path)
    # Neither asks for an amount: with a briefly trained reranker the passage holding the figure
    # may rank out of the top k, and the answer then declines for that ("what psi ..." did).
    questions = [
        "How do I open the charge port when the car has no power?",
        "where is the 12 volt battery located on the Aster?",
    ]
    best = {}
    for question in questions:
        candidates = retrieve(question=question, manual_ids=[sample_manual.pk], k=10).passages
        scores = scorer.score(question, [p.text for p in candidates])
        best[question] = max(scores)
    low, high = sorted(questions, key=best.get)
    assert best[low] < best[high]
    registered.decline_below = (best[low] + best[high]) / 2
    registered.save()
    assistant = chat_services.assistant_create(
        name="Reranked",
        manuals=[sample_manual],
        answer_style=Assistant.AnswerStyle.QUOTED,
        reranker=registered,
    )
    owner = Owner(session_key="reranker-test")

    answered = chat_services.answer(assistant=assistant, question=high, owner=owner, batch=True)
    assert not answered.error
    # Above the threshold the reranker lets the question through. It keeps passages by chance
    # after two steps, so the quote may still find them off the point, but that is not its call.
    assert answered.checks.get("decline", {}).get("reason") != "reranker"
    ranked = [c["rerank_score"] for c in answered.citations]
    assert ranked and ranked == sorted(ranked, reverse=True)
    assert answered.checks["answerability"] == pytest.approx(best[high], abs=1e-5)

    declined = chat_services.answer(assistant=assistant, question=low, owner=owner, batch=True)
    assert declined.declined
    assert declined.checks["decline"]["reason"] == "reranker"
    assert declined.checks["decline"]["answerability"] == pytest.approx(best[low], abs=1e-4)
    # The passages shown under the decline are the reranker's best, in its order.
    nearest = [c["rerank_score"] for c in declined.citations]
    assert nearest == sorted(nearest, reverse=True)
    assert nearest[0] == pytest.approx(best[low], abs=1e-5)


@pytest.mark.django_db
def test_rerank_keeps_the_best_scored_candidates_in_score_order(trained, sample_manual):  # noqa: F811
    from chat import reranking

    registered = trainer.register(trained["model"], "Sample reranker (order)")
    question = "How do I open the charge port when the car has no power?"
    retrieval = retrieve(question=question, manual_ids=[sample_manual.pk], k=8)
    scores = load_scorer(registered.path).score(question, [p.text for p in retrieval.passages])
    # Best score first; equal scores keep retrieval's order (a stable sort).
    by_score = sorted(retrieval.passages, key=lambda p: -scores[retrieval.passages.index(p)])
    kept = reranking.rerank(retrieval, question, registered, 3)
    assert [p.chunk_id for p in kept.passages] == [p.chunk_id for p in by_score[:3]]
    assert [p.rerank_score for p in kept.passages] == sorted(scores, reverse=True)[:3]
    assert kept.answerability == max(scores)
    assert kept.confidence == retrieval.confidence


def test_a_missing_base_model_folder_is_refused_by_name(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="base model folder .*no-such-model.* does not exist"):
        trainer.train(
            None,
            base_model=str(missing),
            hyperparameters=TINY,
            output_dir=tmp_path / "out",
            progress=lambda *args: None,
            should_stop=lambda: False,
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown reranker hyperparameters \\['epochs'\\]"):
        trainer.train(
            None,
            base_model="",
            hyperparameters={"epochs": 3},
            output_dir=tmp_path / "out",
            progress=lambda *args: None,
            should_stop=lambda: False,
        )
    with pytest.raises(RerankerError, match="folder .*no-such-model.* does not exist"):
        CrossEncoderScorer(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RerankerError, match="holds no model"):
        CrossEncoderScorer(tmp_path / "empty")


@pytest.mark.django_db
def test_an_assistant_whose_reranker_folder_is_gone_fails_naming_it(sample_manual, tmp_path):  # noqa: F811
    gone = RetrievalModel.objects.create(
        name="Gone", kind="reranker", path=str(tmp_path / "gone"), decline_below=0.5
    )
    assistant = chat_services.assistant_create(
        name="Broken reranker", manuals=[sample_manual], reranker=gone
    )
    message = chat_services.answer(
        assistant=assistant,
        question="what psi should my tires be?",
        owner=Owner(session_key="reranker-gone"),
        batch=True,
    )
    # The owner reads a reference; the record keeps the reason for the staff.
    assert message.error.startswith("The assistant failed (reference ")
    detail = message.checks["error_detail"]
    assert detail.startswith("RerankerError: the reranker's folder")
    assert str(tmp_path / "gone") in detail and "does not exist" in detail
    assert not message.content


@pytest.mark.django_db
def test_stopping_before_training_writes_nothing(trained, tmp_path):
    with pytest.raises(Stopped):
        trainer.train(
            trained["snapshot"],
            base_model="",
            hyperparameters=TINY,
            output_dir=tmp_path / "stopped",
            progress=lambda *args: None,
            should_stop=lambda: True,
        )
    assert not (tmp_path / "stopped").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.django_db
def test_the_assistant_admin_offers_the_reranker(admin_client, trained):
    registered = trainer.register(trained["model"], "Admin reranker")
    response = admin_client.get(reverse("admin:chat_assistant_add"))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="reranker"' in page
    assert registered.name in page


def test_saved_models_load_with_one_output(trained):
    scorer = CrossEncoderScorer(Path(trained["model"].path))
    scores = scorer.score("tire pressure", ["Inflate the tires to 42 PSI.", "Open the trunk."])
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)


@pytest.mark.django_db
def test_an_evaluation_measures_an_assistant_with_its_reranker(
    trained,
    sample_manual,  # noqa: F811
    settings,
    monkeypatch,
):
    """A retrieval-only run ranks pages in the reranker's order and declines under its
    threshold, as the chat does, so an assistant with a reranker is measured with it."""
    from chat import reranking
    from training import evaluation

    # An HNSW candidate list this wide makes the search exact in effect, so that the best
    # scores this test sets the threshold between are, as near as can be, the run's.
    settings.HNSW_EF_SEARCH = 1000
    registered = trainer.register(trained["model"], "Sample reranker (evaluation)")
    scorer = load_scorer(registered.path)
    questions = [
        "what psi should my tires be? I have the 18 inch wheels",
        "where is the 12 volt battery located on the Aster?",
        "How do I open the charge port when the car has no power?",
    ]
    # A threshold between the questions' best scores, so the run declines some and answers
    # others.
    best_scores = []
    for question in questions:
        candidates = retrieve(question=question, manual_ids=[sample_manual.pk], k=10).passages
        best_scores.append(max(scorer.score(question, [p.text for p in candidates])))
    ordered = sorted(best_scores)
    registered.decline_below = (ordered[0] + ordered[1]) / 2
    registered.save()
    reranked = chat_services.assistant_create(
        name="Reranked", manuals=[sample_manual], reranker=registered, min_score=0.0
    )
    plain = chat_services.assistant_create(name="Plain", manuals=[sample_manual], min_score=0.0)
    lines = "".join(json.dumps({"question": q, "kind": "answerable"}) + "\n" for q in questions)
    # The passages the run gives the reranker, recorded on their way (the rerank itself runs):
    # the expected order is computed from those, since the ten nearest passages of this manual
    # include near ties that a second retrieval need not return alike.
    read = {}
    rerank = reranking.rerank

    def recorded(retrieval, question, reranker, k):
        read[question] = list(retrieval.passages)
        return rerank(retrieval, question, reranker, k)

    monkeypatch.setattr(reranking, "rerank", recorded)

    run = evaluation.evaluation_run_create(
        user=None, questions_jsonl=lines, assistants=[reranked, plain], retrieval_only=True,
        enqueue=False,
    )  # fmt: skip
    assert evaluation.evaluation_run_claim(run_id=run.pk)
    run = evaluation.evaluation_run_execute(run_id=run.pk)

    assert set(read) == set(questions)
    for item in run.items.filter(subject="Reranked"):
        candidates = read[item.question]
        # The reranker chooses from its candidates (up to RERANK_CANDIDATES; fewer where the
        # continuation of a passage joins it), not from the assistant's top_k alone.
        assert reranked.top_k < len(candidates) <= reranking.RERANK_CANDIDATES
        scores = scorer.score(item.question, [p.text for p in candidates])
        # A reranker trained for two steps scores passages within a few thousandths of each
        # other: pages whose passage scores the best within float noise are all the best.
        best_pages = {
            p.source_name for p, s in zip(candidates, scores, strict=True) if s > max(scores) - 1e-6
        }
        assert item.retrieved_sources[0] in best_pages
        assert item.refused == (max(scores) < registered.decline_below)
    assert run.items.filter(subject="Reranked", refused=True).count() == 1
    assert not run.items.filter(subject="Plain", refused=True).exists()


@pytest.mark.django_db
def test_the_launch_form_offers_a_threshold_question_set_to_rerankers_only(
    trained,
    sample_manual,  # noqa: F811
):
    from training.retrieval_views import RetrievalLaunchForm

    question_set = owner_question_set(sample_manual)
    data = {
        "snapshot": trained["snapshot"].pk,
        "kind": "reranker",
        "threshold_question_set": question_set.slug,
    }
    form = RetrievalLaunchForm(data=data)
    assert form.is_valid(), form.errors
    assert form.hyperparameters() == {"threshold_question_set": question_set.slug}
    form = RetrievalLaunchForm(data={**data, "kind": "retriever"})
    assert not form.is_valid()
    assert "Only a reranker" in str(form.errors["threshold_question_set"])
