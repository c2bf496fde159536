"""Retrieval and the decline threshold on the sample manual's owner questions.

Measured with all-MiniLM-L6-v2 on the sample manual (108 chunks; 24 answerable and 4
unanswerable questions in ``curation/sample_manual/questions.jsonl``):

* right page in the top 4 passages: vector 24/24, hybrid (BM25 on the key terms, fused at
  0.3) 24/24; top 1: vector 21/24, hybrid 22/24 (MRR@4 0.931 vs 0.958). On owner questions
  over the Model 3 manual hybrid finds the right page more often too, yet the quoted answers
  gain little (``chat.retrieval``'s docstring), so vector is the default and hybrid is an
  option per assistant.
* best cosine similarity of answerable questions: 0.358 (q21, car length in inches) to 0.726;
  of the unanswerable ones: q25 0.347, q27 0.349, q26 0.384, q28 0.413; off-topic questions
  0.11-0.30. No threshold separates them all: the most on-topic unanswerable questions
  (insurance cost, a Lisbon dealer's loaners) score above the weakest answerable ones. So the
  similarity gate only turns away what is off the manual's topic, and the default 0.30 leaves
  every question on it to the later checks (``chat.declines``): 0.35 had declined q25 and q27
  by similarity, which the key-term check declines too, and an owner's answerable question
  worded far from the manual with them ("how much current can the 12v outlet in the console
  handle", 0.334 over the Model 3 manual: its "up to 12A" is the answer).
"""

from __future__ import annotations

import pytest

from chat.asking import label_phrases
from chat.declines import decline_reason
from chat.models import Assistant
from chat.owner_words import with_manual_names
from chat.retrieval import embed_question, refers_back, retrieve
from chat.selectors import manual_vocabulary
from curation.models import DocumentChunk, Manual, QAPair, RetrievalModel
from tests.chat.conftest import sample_questions

pytestmark = pytest.mark.django_db

DEFAULT_MIN_SCORE = Assistant._meta.get_field("min_score").default
OFF_TOPIC = [
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "Who won the 2022 football world cup?",
    "Can you recommend a good car insurance company?",
    "How do I file my taxes as a rideshare driver?",
]


@pytest.mark.parametrize("method", ["vector", "hybrid"])
def test_the_right_page_is_retrieved_for_nearly_every_answerable_question(sample_manual, method):
    answerable = [q for q in sample_questions() if q.answerable]
    hits = 0
    for question in answerable:
        retrieval = retrieve(
            question=question.question, manual_ids=[sample_manual.pk], k=4, method=method
        )
        hits += any(p.source_name in question.sources for p in retrieval.passages)

    # Measured 24/24 for both; one miss is allowed for another CPU's arithmetic.
    assert hits >= len(answerable) - 1


def test_the_default_threshold_answers_manual_questions_and_declines_off_topic_ones(
    sample_manual, embed
):
    vocabulary = manual_vocabulary(manual_ids=[sample_manual.pk])

    def confidence(text: str) -> float:
        return retrieve(question=text, manual_ids=[sample_manual.pk], k=4).confidence

    def declined(text: str) -> bool:
        """Declined before anything is quoted: by the gate or by the checks after it."""
        found = retrieve(question=text, manual_ids=[sample_manual.pk], k=4)
        if found.confidence < DEFAULT_MIN_SCORE:
            return True
        passages = [f"{p.heading_path}\n{p.body}" for p in found.passages]
        return decline_reason(text, passages, vocabulary, embed=embed) is not None

    questions = sample_questions()
    answerable_below = [
        q.id for q in questions if q.answerable and confidence(q.question) < DEFAULT_MIN_SCORE
    ]
    unanswerable_declined = [q.id for q in questions if not q.answerable and declined(q.question)]

    assert answerable_below == []  # measured: none (the lowest, q21, 0.358)
    # measured: q25, q26 and q27 by their key terms; q28 (a dealer's loaner car) by the
    # loan-car check
    assert len(unanswerable_declined) == 4, unanswerable_declined
    assert all(declined(text) for text in OFF_TOPIC)
    assert sum(confidence(text) < DEFAULT_MIN_SCORE for text in OFF_TOPIC) >= 4  # measured: 4


def test_hybrid_retrieval_adds_the_keyword_ranking_and_keeps_the_vector_confidence(
    sample_manual,
):
    # (Two key words written together, "ground clearance", would find the table by its row
    # label in either method: see the next test.)
    question = "how much clearance is under the aster?"
    ids = [sample_manual.pk]
    vector = retrieve(question=question, manual_ids=ids, k=20)
    hybrid = retrieve(question=question, manual_ids=ids, k=20, method="hybrid")

    def table_rank(passages) -> int:
        ranks = [i for i, p in enumerate(passages) if "Ground clearance" in p.body]
        return ranks[0] if ranks else len(passages)

    # The dimensions table names the subject: BM25 ranks it first, and fusion lifts it above
    # where the vector list alone has it.
    table = hybrid.passages[table_rank(hybrid.passages)]
    assert "terms" in table.found_by
    assert table_rank(hybrid.passages) < table_rank(vector.passages)
    # Whatever fusion shows in the top 4, the confidence is the vector list's best similarity.
    shown = retrieve(question=question, manual_ids=ids, k=4, method="hybrid")
    assert shown.confidence == pytest.approx(vector.passages[0].similarity, abs=1e-6)


def test_a_table_whose_row_is_labelled_with_the_questions_words_joins_the_passages(
    sample_manual,
):
    found = retrieve(question="ground clearance on the aster?", manual_ids=[sample_manual.pk], k=4)

    table = [p for p in found.passages if "| Ground clearance | 175 mm |" in p.body]
    assert table and "label" in table[0].found_by
    assert found.passages.index(table[0]) <= 1
    # Its similarity is its own, and the confidence still the vector list's best.
    assert table[0].similarity < found.confidence


@pytest.mark.parametrize(
    ("question", "phrases"),
    [
        ("whats the ground clearance? my driveway has a dip", ["ground clearance"]),
        ("turning circle on a model 3? for a u-turn", ["turning circle"]),
        (
            "rear cargo volume with the seats down",
            ["rear cargo volume", "cargo volume", "rear cargo"],
        ),
        ("how do i open the trunk", []),
    ],
)
def test_the_words_a_question_writes_together_are_read_as_a_row_label(question, phrases):
    assert label_phrases(question) == phrases


def test_the_keyword_index_is_rebuilt_when_a_manual_changes(sample_manual):
    from chat.selectors import manual_term_index

    before = manual_term_index(manual_ids=[sample_manual.pk])
    assert manual_term_index(manual_ids=[sample_manual.pk]) is before
    document = sample_manual.documents.order_by("id").first()
    chunk = DocumentChunk.objects.create(
        document=document,
        position=999,
        heading_path="Zeppelins",
        text="Zeppelins\n\nA zeppelin mooring mast is not supported.",
        token_count=9,
        embedding=embed_question("zeppelin mooring mast"),
    )
    after = manual_term_index(manual_ids=[sample_manual.pk])
    assert after is not before
    assert after.search(["zeppelin"], 4) == [chunk.pk]
    assert before.search(["zeppelin"], 4) == []
    # Switched to a tuned embedder whose vectors no chunk holds yet, the manual serves none.
    tuned = RetrievalModel.objects.create(
        name="Tuned (index test)", kind=RetrievalModel.Kind.EMBEDDER, path="/nonexistent"
    )
    Manual.objects.filter(pk=sample_manual.pk).update(embedder=tuned)
    switched = manual_term_index(manual_ids=[sample_manual.pk])
    assert switched.search(["zeppelin"], 4) == [] and not switched.lengths


def test_an_approved_question_leads_retrieval_to_its_passage(sample_manual):
    chunk = (
        DocumentChunk.objects.filter(
            document__manual=sample_manual,
            text__contains="release cable",
            document__source_name="charging.html",
        )
        .order_by("position")
        .first()
    )
    question = "My car is dead and the charge flap is stuck shut, what now?"
    pair = QAPair.objects.create(
        manual=sample_manual,
        document=chunk.document,
        chunk=chunk,
        question=question,
        answer="Pull the manual release cable on the left side of the trunk.",
        question_hash="x",
        original_question=question,
        original_answer="-",
        origin=QAPair.Origin.MANUAL,
        status=QAPair.Status.APPROVED,
        question_embedding=embed_question(question),
    )

    retrieval = retrieve(question=question, manual_ids=[sample_manual.pk], k=4)

    assert retrieval.matched_pair_id == pair.pk
    assert retrieval.passages[0].chunk_id == chunk.pk
    assert "question" in retrieval.passages[0].found_by
    assert retrieval.confidence == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("What should I do about it?", True),
        ("Can they fold automatically?", True),
        ("and the rear window?", True),
        ("What about winter tires?", True),
        ("how often should i check them", True),
        ("What is the capital of France?", False),
        ("How do I bake sourdough bread?", False),
        ("What tire pressure should I use?", False),
    ],
)
def test_a_question_that_refers_back_is_told_from_one_that_stands_alone(question, follow_up):
    assert refers_back(question) is follow_up


def test_a_question_is_embedded_with_the_manuals_name_for_an_owners_word(sample_manual):
    # "frunk" means little to the embedding model: the question alone comes no nearer than
    # 0.30 to any passage (measured; the off-topic gate is 0.30), and with the manual's
    # name after it, to 0.46, the passages on the front trunk's release.
    question = "frunk wont open"
    vocabulary = manual_vocabulary(manual_ids=[sample_manual.pk])
    named = with_manual_names(question, vocabulary)
    assert named == "frunk (front trunk) wont open"

    alone = retrieve(question=question, manual_ids=[sample_manual.pk], k=4)
    searched = retrieve(question=question, embedded_as=named, manual_ids=[sample_manual.pk], k=4)

    assert searched.confidence > alone.confidence + 0.1
    assert "front trunk" in searched.passages[0].body.lower()
    # the name is searched by meaning only: the lists that read words read the owner's
    assert all(p.found_by == ("vector",) for p in searched.passages)
