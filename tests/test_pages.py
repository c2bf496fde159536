"""The public pages: home, manuals, documents with a highlighted chunk, and the nav."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.views.csrf import csrf_failure
from django.views.defaults import permission_denied, server_error

from curation import services
from curation.models import DocumentChunk, ManualDocument
from curation.services import CleanDocument

pytestmark = pytest.mark.django_db


@pytest.fixture
def document():
    manual = services.manual_get_or_create(
        name="Corvan Aster 2025", vehicle_make="Corvan", vehicle_model="Aster", vehicle_year=2025
    )
    document, _, _ = services.document_upsert(
        manual=manual,
        clean=CleanDocument(
            source_name="charging.html",
            source_url="http://127.0.0.1/manual/charging.html",
            title="Charging",
            markdown=(
                "# Charging\n\n## Opening the Charge Port\n\nPress the button on the cable.\n\n"
                "## Manual Release\n\nPull the release cable <script>alert(1)</script> in the "
                "trunk.\n"
            ),
            word_count=25,
        ),
    )
    return document


def test_home_links_to_every_part_of_the_product(client, document):
    html = client.get(reverse("home")).content.decode()
    for url in ["/chat/", "/admin/", "/training/", "/manuals/"]:
        assert f'href="{url}' in html
    assert "Corvan Aster 2025" in html


def test_document_page_shows_chunks_and_highlights_the_cited_one(client, document):
    chunk = document.chunks.get(heading_path__endswith="Manual Release")
    url = reverse("curation:document", args=[document.manual_id, document.pk])

    html = client.get(url, {"chunk": chunk.pk}).content.decode()

    assert f'id="chunk-{chunk.pk}"' in html
    assert "highlighted" in html
    assert "Press the button on the cable." in html


def test_manual_text_cannot_inject_script_into_a_page(client, document):
    url = reverse("curation:document", args=[document.manual_id, document.pk])
    html = client.get(url).content.decode()
    assert "<script>alert(1)</script>" not in html


def test_manual_pages_list_documents(client, document):
    html = client.get(reverse("curation:manual_detail", args=[document.manual_id])).content.decode()
    assert "charging.html" in html
    assert client.get(reverse("curation:manual_list")).status_code == 200


def test_unknown_document_is_404(client, document):
    url = reverse("curation:document", args=[document.manual_id, 999999])
    assert client.get(url).status_code == 404


def test_an_unknown_address_gets_the_sites_own_not_found_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no page at this address." in html
    assert "<code>/no-such-page/</code>" in html
    # The site's own page: its navigation and a way back to the chat.
    assert 'aria-label="Main"' in html and 'href="/chat/"' in html


def test_a_server_error_gets_a_page_that_says_so_plainly(rf):
    response = server_error(rf.get("/chat/"))

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side." in html
    assert 'href="/"' in html


def test_a_refusal_gets_a_page_that_names_it(rf, django_user_model):
    request = rf.get("/training/launch/")
    request.user = django_user_model.objects.create_user("reviewer", password="x")

    response = permission_denied(
        request, PermissionDenied("Launching training needs the Trainer role.")
    )

    assert response.status_code == 403
    html = response.content.decode()
    assert "Launching training needs the Trainer role." in html
    assert "You are signed in as reviewer." in html


def test_an_expired_form_gets_a_page_that_says_to_reload(rf):
    response = csrf_failure(rf.post("/chat/ask/"), reason="CSRF token missing.")

    assert response.status_code == 403
    html = response.content.decode()
    assert "Please reload the page and send it again." in html
    assert 'aria-label="Main"' in html  # the site's own page, with its navigation


def test_chunks_are_rebuilt_from_the_document(document):
    assert list(DocumentChunk.objects.values_list("heading_path", flat=True)) == [
        "Charging > Opening the Charge Port",
        "Charging > Manual Release",
    ]
    assert ManualDocument.objects.get().version == 1
