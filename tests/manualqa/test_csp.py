"""The content security policy (security review L4): only this site's scripts run.

The pages' scripts live in ``static/js/``; a template with an inline script would be blocked
by the browser, so the first test reads every template, and the browser test checks in a real
Chromium that the pages' scripts still do their work under the policy, with no violation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse

from curation import services
from curation.services import CleanDocument

TEMPLATES = Path(settings.BASE_DIR) / "templates"
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "csp-pw-123456"

# A script element with no src that a browser would run (JSON data blocks do not run).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def test_no_template_runs_inline_script():
    found = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for pattern in (INLINE_SCRIPT, EVENT_HANDLER)
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert list(TEMPLATES.rglob("*.html")) and found == []


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/chat/", "/manuals/", "/admin/login/", "/healthz"])
def test_every_response_carries_the_policy(client, url):
    response = client.get(url)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert policy == settings.CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]


def long_document():
    manual = services.manual_get_or_create(name="CSP manual")
    sections = "".join(
        f"## Section {n}\n\n" + f"Keep the part number {n} clean and dry. " * 30 + "\n\n"
        for n in range(1, 25)
    )
    document, _, _ = services.document_upsert(
        manual=manual,
        clean=CleanDocument("long.md", "", "Long page", f"# Long page\n\n{sections}", 5000),
    )
    return document


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_pages_run_their_scripts_under_the_policy_in_a_browser(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    document = long_document()
    last_chunk = document.chunks.order_by("position").last()
    User.objects.create_superuser("csp-admin", "csp@example.com", PASSWORD)
    base = live_server.url

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            # Every violation of the policy is reported to the page as an event: record them.
            page.add_init_script(
                "window.__violations = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            violations = []

            def visit(path: str) -> None:
                page.goto(base + path)
                page.wait_for_load_state("load")

            def record() -> None:
                violations.extend(page.evaluate("window.__violations"))

            # A citation link scrolls the cited passage into view (static/js/document.js).
            visit(f"/manuals/{document.manual_id}/documents/{document.pk}/?chunk={last_chunk.pk}")
            expect(page.locator(f"#chunk-{last_chunk.pk}")).to_be_in_viewport()
            assert page.evaluate("window.scrollY") > 0
            record()

            visit("/admin/login/?next=/admin/")
            page.fill("#id_username", "csp-admin")
            page.fill("#id_password", PASSWORD)
            with page.expect_navigation():
                page.click("input[type=submit]")
            record()

            # Choosing a manual on the review dashboard reloads it (review-dashboard.js).
            visit(reverse("admin:curation_qapair_dashboard"))
            with page.expect_navigation():
                page.select_option("#dash-choices select", str(document.manual_id))
            assert f"manual={document.manual_id}" in page.url
            record()

            # The review page marks itself scripted (review.js); the API docs render their
            # Swagger UI from this site's own files.
            visit(reverse("admin:curation_qapair_review"))
            expect(page.locator("body")).to_have_class(re.compile(r"\breview-js\b"))
            record()
            visit(reverse("api-docs"))
            expect(page.locator("#swagger-ui .info .title")).to_contain_text("ManualQA API")
            record()
        finally:
            browser.close()

    assert violations == []
