"""Reviewing QA pairs in the admin: the list, the change page, bulk actions, the focused review
page, the dashboard, and who may use which."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from curation import qa, services
from curation.models import LLMEndpoint, ManualDocument, QAPair, QAPairRevision
from tests.curation.generation_support import make_manual
from tests.curation.review_support import make_pairs, reviewer, staff_user, trainer

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:curation_qapair_changelist"
REVIEW = "admin:curation_qapair_review"
DASHBOARD = "admin:curation_qapair_dashboard"


@pytest.fixture
def manual():
    return make_manual("Review manual")


@pytest.fixture
def rita():
    return reviewer("rita")


@pytest.fixture
def rita_client(client, rita):
    client.force_login(rita)
    return client


def page(response) -> str:
    return response.content.decode()


def changelist_url(**params) -> str:
    from urllib.parse import urlencode

    return reverse(CHANGELIST) + ("?" + urlencode(params) if params else "")


# -- the list --------------------------------------------------------------------------------


def test_the_list_costs_the_same_queries_for_5_pairs_as_for_60(rita_client, manual):
    make_pairs(manual, 5, flags=[["low_grounding"]] * 5)
    url = changelist_url(**{"manual__id__exact": manual.pk})
    rita_client.get(url)  # warm caches (content types, the session) outside the count

    with CaptureQueriesContext(connection) as with_five:
        response = rita_client.get(url)
    assert response.context["cl"].result_count == 5
    make_pairs(manual, 55, prefix="Where do I")
    with CaptureQueriesContext(connection) as with_sixty:
        response = rita_client.get(url)

    assert response.context["cl"].result_count == 60
    assert len(with_sixty) == len(with_five), [q["sql"] for q in with_sixty.captured_queries]
    body = page(response)
    for column in ("Question", "Status", "Origin", "Grounding", "Flags", "Document"):
        assert f">{column}<" in body or f">{column}</a>" in body
    assert "low grounding" in body


def test_the_list_filters_by_status_origin_grounding_flag_and_run(rita_client, manual):
    pairs = make_pairs(
        manual,
        4,
        grounding=[0.1, 0.5, 0.9, None],
        flags=[["duplicate"], [], ["refusal"], []],
    )
    QAPair.objects.filter(pk=pairs[1].pk).update(status=QAPair.Status.APPROVED)
    QAPair.objects.filter(pk=pairs[2].pk).update(origin=QAPair.Origin.IMPORTED)
    endpoint = LLMEndpoint.objects.create(name="Remote model", kind="openai", model="m")
    run = services.generation_run_create(manual=manual, endpoint=endpoint, enqueue=False)
    QAPair.objects.filter(pk=pairs[3].pk).update(generation_run=run)

    def count(**params) -> int:
        response = rita_client.get(changelist_url(**params))
        assert response.status_code == 200
        return response.context["cl"].result_count

    assert count(status__exact="pending") == 3
    assert count(origin__exact="imported") == 1
    assert count(grounding="low") == 1
    assert count(grounding="high") == 1
    assert count(grounding="none") == 1
    assert count(flag="duplicate") == 1
    assert count(flag="any") == 2
    assert count(run=run.pk) == 1
    assert count(q=pairs[0].answer[:25]) >= 1  # search covers answers
    assert count(q="feature number 3 of") == 1  # and questions


def test_the_document_filter_lists_only_the_chosen_manuals_pages(rita_client, manual):
    other = make_manual("Other manual")
    make_pairs(manual, 4)
    make_pairs(other, 2)
    tires = ManualDocument.objects.get(manual=manual, source_name="tires.md")
    other_tires = ManualDocument.objects.get(manual=other, source_name="tires.md")

    response = rita_client.get(changelist_url(**{"manual__id__exact": manual.pk}))
    body = page(response)
    assert f"document={tires.pk}" in body
    assert f"document={other_tires.pk}" not in body
    filtered = rita_client.get(
        changelist_url(**{"manual__id__exact": manual.pk, "document": tires.pk})
    )
    assert filtered.context["cl"].result_count == 2


def test_the_source_changed_filter_finds_flagged_pairs_and_newer_documents(rita_client, manual):
    pairs = make_pairs(manual, 4)  # 0, 1 on charging.md; 2, 3 on tires.md
    QAPair.objects.filter(pk=pairs[0].pk).update(flags=[qa.FLAG_SOURCE_CHANGED])
    ManualDocument.objects.filter(source_name="tires.md").update(version=2)

    changed = rita_client.get(changelist_url(source_changed="yes")).context["cl"]
    unchanged = rita_client.get(changelist_url(source_changed="no")).context["cl"]

    assert {pair.pk for pair in changed.result_list} == {pairs[0].pk, pairs[2].pk, pairs[3].pk}
    assert [pair.pk for pair in unchanged.result_list] == [pairs[1].pk]


# -- the change page -------------------------------------------------------------------------


def test_editing_on_the_change_page_goes_through_the_services_and_shows_history(
    rita_client, rita, manual
):
    pair = make_pairs(manual, 1)[0]
    url = reverse("admin:curation_qapair_change", args=[pair.pk])

    response = rita_client.post(
        url,
        {
            "question": pair.question,
            "answer": "Press the button on the charge cable.\r\nThe door opens.",
            "status": "approved",
        },
    )

    assert response.status_code == 302
    pair.refresh_from_db()
    assert pair.answer == "Press the button on the charge cable.\nThe door opens."
    assert pair.original_answer != pair.answer  # the generated text is kept
    assert (pair.status, pair.reviewed_by) == ("approved", rita)
    actions = list(pair.revisions.order_by("id").values_list("action", "user"))
    assert actions == [("edit", rita.pk), ("approve", rita.pk)]
    body = page(rita_client.get(url))
    assert "Edited" in body and "Approved" in body and "rita" in body
    assert "pending</span> → <span" in body  # status before → after
    assert pair.original_answer in body  # the original, read-only
    assert "<mark>" in body  # the supporting sentence of the source


def test_resubmitting_unchanged_text_with_browser_line_endings_records_nothing(rita_client, manual):
    pair = make_pairs(manual, 1)[0]
    QAPair.objects.filter(pk=pair.pk).update(answer="Line one.\nLine two.")

    rita_client.post(
        reverse("admin:curation_qapair_change", args=[pair.pk]),
        {"question": pair.question, "answer": "Line one.\r\nLine two.", "status": "pending"},
    )

    assert not QAPairRevision.objects.exists()


def test_an_edit_asking_a_question_the_passage_already_has_is_refused(rita_client, manual):
    first = make_pairs(manual, 3)[0]
    twin = make_pairs(manual, 1, prefix="Why do I")[0]
    assert twin.chunk_id == first.chunk_id

    response = rita_client.post(
        reverse("admin:curation_qapair_change", args=[twin.pk]),
        {"question": first.question.upper(), "answer": twin.answer, "status": "pending"},
    )

    assert response.status_code == 200
    assert "already asks this question" in page(response)
    twin.refresh_from_db()
    assert twin.question == twin.original_question


def test_staff_who_may_only_view_pairs_get_a_read_only_page(client, manual):
    viewer = staff_user("viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_qapair"))
    client.force_login(viewer)
    pair = make_pairs(manual, 1)[0]
    url = reverse("admin:curation_qapair_change", args=[pair.pk])

    body = page(client.get(url))
    assert 'name="answer"' not in body
    response = client.post(url, {"question": "Q?", "answer": "A.", "status": "approved"})
    assert response.status_code == 403
    listing = client.get(reverse(CHANGELIST))
    assert listing.status_code == 200
    assert "approve_pairs" not in page(listing)  # no review actions offered


# -- bulk actions ----------------------------------------------------------------------------


def post_action(client, action: str, pairs, *, query: str = "", **extra):
    data = {
        "action": action,
        "index": 0,
        "_selected_action": [pair.pk for pair in pairs],
        **extra,
    }
    return client.post(reverse(CHANGELIST) + query, data)


@pytest.mark.parametrize(
    ("action", "status", "revision"),
    [
        ("approve_pairs", "approved", "approve"),
        ("reject_pairs", "rejected", "reject"),
    ],
)
def test_a_selection_is_decided_at_once_with_the_reviewer_recorded(
    rita_client, rita, manual, action, status, revision
):
    pairs = make_pairs(manual, 3)

    response = post_action(rita_client, action, pairs[:2])

    assert response.status_code == 302
    assert list(QAPair.objects.order_by("id").values_list("status", flat=True)) == [
        status,
        status,
        "pending",
    ]
    revisions = QAPairRevision.objects.filter(action=revision)
    assert revisions.count() == 2 and set(revisions.values_list("user", flat=True)) == {rita.pk}
    assert QAPair.objects.filter(reviewed_by=rita, reviewed_at__isnull=False).count() == 2


def test_reset_to_pending_undoes_a_decision(rita_client, manual):
    pairs = make_pairs(manual, 2, status=QAPair.Status.REJECTED)
    post_action(rita_client, "reset_pairs", pairs)
    assert set(QAPair.objects.values_list("status", flat=True)) == {"pending"}
    assert QAPairRevision.objects.filter(action="reset").count() == 2


def test_bulk_approve_all_skips_chat_feedback_pairs_unless_filtered(rita_client, manual):
    """Security review M4: "approve all matching" never sweeps owners' thumbs-down pairs
    into the dataset unless the list is filtered to them."""
    pairs = make_pairs(manual, 3)
    QAPair.objects.filter(pk=pairs[0].pk).update(origin=QAPair.Origin.CHAT_FEEDBACK)

    post_action(rita_client, "approve_pairs", pairs, select_across=1, confirm="yes")

    statuses = dict(QAPair.objects.values_list("pk", "status"))
    assert statuses == {pairs[0].pk: "pending", pairs[1].pk: "approved", pairs[2].pk: "approved"}

    post_action(
        rita_client,
        "approve_pairs",
        pairs[:1],
        query="?origin__exact=chat_feedback",
        select_across=1,
        confirm="yes",
    )
    assert QAPair.objects.get(pk=pairs[0].pk).status == "approved"


def test_selecting_every_match_asks_for_confirmation_with_the_exact_count(rita_client, manual):
    make_pairs(manual, 1234)
    make_pairs(manual, 3, status=QAPair.Status.REJECTED, prefix="Why can I")
    on_page = QAPair.objects.filter(status="pending").order_by("-created_at")[:50]
    query = "?status__exact=pending"

    asked = post_action(rita_client, "approve_pairs", on_page, query=query, select_across=1)

    assert asked.status_code == 200
    assert "Approve all 1,234 QA pairs matching the current filter?" in page(asked)
    assert not QAPair.objects.filter(status="approved").exists()

    done = post_action(
        rita_client, "approve_pairs", on_page, query=query, select_across=1, confirm="yes"
    )

    assert done.status_code == 302
    assert QAPair.objects.filter(status="approved").count() == 1234
    assert QAPair.objects.filter(status="rejected").count() == 3  # outside the filter
    assert QAPairRevision.objects.filter(action="approve").count() == 1234
    messages = [str(m) for m in rita_client.get(done.url).context["messages"]]
    assert "Approved 1,234 QA pairs." in messages


def test_marking_duplicates_asks_for_the_canonical_pair_then_links_and_rejects(
    rita_client, rita, manual
):
    canonical, *copies = make_pairs(manual, 3)

    asked = post_action(rita_client, "mark_duplicate_of", copies)
    assert "Mark 2 QA pairs as duplicates of which pair?" in page(asked)
    wrong = post_action(rita_client, "mark_duplicate_of", copies, confirm="yes", canonical=999999)
    assert "There is no QA pair #999999." in page(wrong)
    done = post_action(
        rita_client, "mark_duplicate_of", copies, confirm="yes", canonical=canonical.pk
    )

    assert done.status_code == 302
    for copy in QAPair.objects.filter(pk__in=[c.pk for c in copies]):
        assert (copy.duplicate_of_id, copy.status, copy.reviewed_by) == (
            canonical.pk,
            "rejected",
            rita,
        )
        assert qa.FLAG_DUPLICATE in copy.flags
    assert QAPairRevision.objects.filter(action="mark_duplicate", user=rita).count() == 2


def test_regenerating_asks_for_an_active_endpoint_and_queues_on_commit(
    rita_client, manual, django_capture_on_commit_callbacks
):
    pairs = make_pairs(manual, 2)
    active = LLMEndpoint.objects.create(name="Remote model", kind="openai", model="m")
    LLMEndpoint.objects.create(name="Retired model", kind="openai", model="m", is_active=False)

    asked = post_action(rita_client, "regenerate_answers", pairs)
    assert "Remote model" in page(asked) and "Retired model" not in page(asked)
    with django_capture_on_commit_callbacks() as callbacks:
        done = post_action(
            rita_client, "regenerate_answers", pairs, confirm="yes", endpoint=active.pk
        )

    assert done.status_code == 302
    assert len(callbacks) == 1
    messages = [str(m) for m in rita_client.get(done.url).context["messages"]]
    assert any(
        m.startswith("Queued 2 QA pairs for new answers from Remote model") for m in messages
    )
    assert {p.answer for p in QAPair.objects.all()} == {p.answer for p in pairs}  # not yet


# -- the focused review page -------------------------------------------------------------------


def test_the_review_page_shows_the_least_grounded_pair_beside_its_marked_source(
    rita_client, manual
):
    pairs = make_pairs(manual, 3, grounding=[0.8, 0.2, 0.5])
    QAPair.objects.filter(pk=pairs[0].pk).update(status="approved")

    response = rita_client.get(reverse(REVIEW))

    body = page(response)
    assert response.context["pair"].pk == pairs[1].pk
    assert escape(pairs[1].question) in body
    assert f"<mark>{escape(pairs[1].answer.rstrip('.'))}" in body  # the answer quotes that sentence
    assert "1 of 3 reviewed" in body.replace("<strong>", "").replace("</strong>", "")
    assert "Pair <strong>1</strong> of 2 in the queue" in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_approving_on_the_review_page_moves_on_to_the_next_pair(rita_client, rita, manual):
    pairs = make_pairs(manual, 3, grounding=[0.1, 0.2, 0.3])

    response = rita_client.post(
        reverse(REVIEW) + "?order=grounding", {"pair": pairs[0].pk, "action": "approve"}
    )

    assert response.status_code == 302
    assert f"pair={pairs[1].pk}" in response.url
    pairs[0].refresh_from_db()
    assert (pairs[0].status, pairs[0].reviewed_by) == ("approved", rita)
    shown = rita_client.get(response.url)
    assert shown.context["pair"].pk == pairs[1].pk
    assert any("Approved" in str(m) for m in shown.context["messages"])


def test_rejecting_the_last_pair_wraps_to_the_start_of_the_queue(rita_client, manual):
    pairs = make_pairs(manual, 2, grounding=[0.1, 0.2])
    response = rita_client.post(reverse(REVIEW), {"pair": pairs[1].pk, "action": "reject"})
    assert rita_client.get(response.url).context["pair"].pk == pairs[0].pk
    assert QAPair.objects.get(pk=pairs[1].pk).status == "rejected"


def test_editing_on_the_review_page_keeps_the_original_and_stays_on_the_pair(
    rita_client, rita, manual
):
    pair = make_pairs(manual, 1)[0]

    response = rita_client.post(
        reverse(REVIEW),
        {
            "pair": pair.pk,
            "action": "edit",
            "question": pair.question,
            "answer": "Press the charge cable button.",
        },
    )

    assert f"pair={pair.pk}" in response.url
    pair.refresh_from_db()
    assert pair.answer == "Press the charge cable button."
    assert pair.original_answer != pair.answer
    assert pair.status == "pending"
    assert pair.revisions.get().changes["answer"][1] == "Press the charge cable button."
    assert "Press the charge cable button." in page(rita_client.get(response.url))


def test_an_empty_answer_is_refused_on_the_review_page_and_the_editor_stays_open(
    rita_client, manual
):
    pair = make_pairs(manual, 1)[0]

    response = rita_client.post(
        reverse(REVIEW), {"pair": pair.pk, "action": "edit", "question": "Q?", "answer": "  "}
    )

    assert response.status_code == 200
    assert "The answer cannot be empty." in page(response)
    assert 'class="review-grid editing"' in page(response)
    pair.refresh_from_db()
    assert pair.question == pair.original_question


def test_the_review_page_can_be_limited_to_a_manual_and_ordered_newest_first(rita_client, manual):
    other = make_manual("Other manual")
    mine = make_pairs(manual, 3)
    make_pairs(other, 2)

    newest = rita_client.get(reverse(REVIEW), {"manual": manual.pk, "order": "newest"})

    assert newest.context["pair"].pk == mine[-1].pk
    assert newest.context["counts"].total == 3
    assert "Newest first" in page(newest)


def test_the_review_page_escapes_pair_text_and_says_when_the_queue_is_empty(rita_client, manual):
    pair = make_pairs(manual, 1)[0]
    QAPair.objects.filter(pk=pair.pk).update(question="<script>alert(1)</script> How?")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page(rita_client.get(reverse(REVIEW)))

    QAPair.objects.update(status="approved")
    assert "Nothing left to review" in page(rita_client.get(reverse(REVIEW)))


def test_review_decisions_need_the_csrf_token(rita, manual):
    pair = make_pairs(manual, 1)[0]
    client = Client(enforce_csrf_checks=True)
    client.force_login(rita)
    response = client.post(reverse(REVIEW), {"pair": pair.pk, "action": "approve"})
    assert response.status_code == 403
    assert QAPair.objects.get(pk=pair.pk).status == "pending"


# -- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_shows_counts_documents_and_throughput_with_working_links(
    rita_client, rita, manual
):
    pairs = make_pairs(manual, 4)  # 0, 1 on charging.md; 2, 3 on tires.md
    services.qa_pairs_bulk_set_status(
        pairs=QAPair.objects.filter(pk__in=[pairs[0].pk, pairs[1].pk]),
        status="approved",
        reviewer=rita,
    )

    response = rita_client.get(reverse(DASHBOARD), {"manual": manual.pk})

    body = page(response)
    documents = [row["document"].source_name for row in response.context["documents"]]
    assert documents == ["tires.md", "charging.md"]  # fewest approved first
    assert [(row.username, row.total) for row in response.context["throughput"]] == [("rita", 2)]
    pending_link = next(
        url for label, _, url in response.context["status_links"] if label == "Pending"
    )
    assert rita_client.get(pending_link).context["cl"].result_count == 2
    tires_row = response.context["documents"][0]
    _, tires_pending_link = tires_row["counts"][1]
    assert rita_client.get(tires_pending_link).context["cl"].result_count == 2
    assert "Reviewer throughput, last 14 days" in body


def test_the_dashboard_costs_the_same_queries_however_much_there_is(rita_client, manual):
    make_pairs(manual, 2)
    rita_client.get(reverse(DASHBOARD))
    with CaptureQueriesContext(connection) as small:
        rita_client.get(reverse(DASHBOARD))
    make_manual("Second manual")
    pairs = make_pairs(manual, 40, prefix="Where do I")
    for name, status, chosen in (
        ("sam", "approved", pairs[:10]),
        ("kim", "rejected", pairs[10:15]),
    ):
        services.qa_pairs_bulk_set_status(
            pairs=QAPair.objects.filter(pk__in=[p.pk for p in chosen]),
            status=status,
            reviewer=reviewer(name),
        )
    with CaptureQueriesContext(connection) as large:
        response = rita_client.get(reverse(DASHBOARD))
    assert len(response.context["throughput"]) == 2
    assert len(large) == len(small)


# -- roles -----------------------------------------------------------------------------------


REVIEW_PAGES = [REVIEW, DASHBOARD, CHANGELIST]


@pytest.mark.parametrize("name", REVIEW_PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", REVIEW_PAGES)
def test_users_who_are_not_staff_are_sent_to_the_login_page(client, name):
    client.force_login(User.objects.create_user("owner", password="pw-123456"))
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", REVIEW_PAGES)
def test_staff_without_the_reviewer_role_are_refused(client, name):
    client.force_login(staff_user("plain"))
    assert client.get(reverse(name)).status_code == 403


def test_staff_without_the_role_cannot_post_a_review_decision(client, manual):
    pair = make_pairs(manual, 1)[0]
    client.force_login(staff_user("plain"))
    response = client.post(reverse(REVIEW), {"pair": pair.pk, "action": "approve"})
    assert response.status_code == 403
    assert QAPair.objects.get(pk=pair.pk).status == "pending"


def test_a_reviewer_reviews_but_cannot_start_generation_or_snapshot_datasets(
    rita_client, rita, manual
):
    make_pairs(manual, 1)
    for name in REVIEW_PAGES:
        assert rita_client.get(reverse(name)).status_code == 200
    assert rita.has_perm("curation.review_qapair")
    assert not rita.has_perm("training.add_datasetsnapshot")
    assert not rita.has_perm("curation.add_generationrun")
    start = reverse("admin:curation_generationrun_start") + f"?manual={manual.pk}"
    assert rita_client.get(start).status_code == 403


def test_a_trainer_reviews_and_may_start_generation_and_snapshot_datasets(client, manual):
    tom = trainer("tom")
    client.force_login(tom)
    make_pairs(manual, 1)
    for name in REVIEW_PAGES:
        assert client.get(reverse(name)).status_code == 200
    assert tom.has_perm("training.add_datasetsnapshot")
    assert tom.has_perm("curation.add_generationrun")
    start = reverse("admin:curation_generationrun_start") + f"?manual={manual.pk}"
    assert client.get(start).status_code == 200
