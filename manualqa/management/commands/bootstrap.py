"""``python manage.py bootstrap``: everything a fresh install needs before it serves pages."""

from __future__ import annotations

import secrets
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from chat import quote_vectors
from chat import services as chat_services
from curation import services
from curation.models import LLMEndpoint, Manual
from manualqa.commands import fail_unless_succeeded
from manualqa.env import secret_file

# Created by curation's migration 0004: the bundled SmolLM2-135M-Instruct.
DEFAULT_ENDPOINT_NAME = "Local SmolLM2-135M"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


class Command(BaseCommand):
    help = (
        "Migrate, ingest the bundled sample manual if it is missing, and create the default "
        "chat assistant over it; with --demo, also the demo superuser (its password is printed "
        "once and kept in var/demo_admin_password, mode 0600, until it is changed)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-sample", action="store_true", help="Skip the sample manual")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Create the demo superuser 'admin' (make run asks for it; a deployment should "
            "create its own with createsuperuser)",
        )

    def handle(self, *args, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        if not options["no_sample"]:
            self._ingest_sample()
            self._default_assistant()
        if options["demo"]:
            self._demo_superuser()

    def _ingest_sample(self) -> None:
        manual = Manual.objects.filter(name=settings.SAMPLE_MANUAL_NAME).first()
        if manual is not None and manual.documents.exists():
            self.stdout.write(f"Sample manual {manual.name!r} already ingested.")
            return
        # The sample is a web site, so it is ingested the way a real manual is: crawled over
        # HTTP (robots.txt and all), from a throwaway server on a random loopback port.
        handler = partial(_QuietHandler, directory=str(settings.SAMPLE_MANUAL_DIR))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            manual = services.manual_get_or_create(
                name=settings.SAMPLE_MANUAL_NAME,
                vehicle_make="Corvan",
                vehicle_model="Aster",
                vehicle_year=2025,
            )
            start_url = f"http://127.0.0.1:{server.server_port}/manual/index.html"
            run = services.ingestion_run_create(
                manual=manual,
                source=start_url,
                options={"min_delay_s": 0, "allow_private_networks": True},
                enqueue=False,
            )
            self.stdout.write(f"Ingesting the sample manual ({start_url}) ...")
            run = services.ingestion_run_execute(run_id=run.pk)
        finally:
            server.shutdown()
            server.server_close()
        fail_unless_succeeded(run, "Sample manual ingestion")
        self.stdout.write(
            f"Sample manual ingested: {run.documents_created} documents, "
            f"{run.chunks_created} chunks, {run.chunks_embedded} embedded."
        )

    def _default_assistant(self) -> None:
        manual = Manual.objects.filter(name=settings.SAMPLE_MANUAL_NAME).first()
        if manual is None:
            return
        endpoint = LLMEndpoint.objects.filter(name=DEFAULT_ENDPOINT_NAME, is_active=True).first()
        assistant = chat_services.assistant_ensure_default(manual=manual, endpoint=endpoint)
        generator = assistant.endpoint.name if assistant.endpoint else "no generator (extractive)"
        self.stdout.write(f"Default chat assistant: {assistant.name} ({generator}).")
        if settings.QUOTE_VECTORS_ON_INGEST:
            # Ingestion stores them; an install from before they were stored gets them here.
            stored = quote_vectors.sentence_vectors_store(manual_ids=[manual.pk])
            if stored:
                self.stdout.write(f"Sample manual: {stored} sentence vectors stored.")

    def _demo_superuser(self) -> None:
        """Create ``admin`` with a random password, printed this once and kept (0600) in
        var/demo_admin_password for as long as it is the password; later runs only point at
        the file, and drop it once the password has been changed."""
        user_model = get_user_model()
        password_file = settings.VAR_DIR / "demo_admin_password"
        admin = user_model.objects.filter(username="admin").first()
        if admin is not None:
            if not password_file.exists():
                self.stdout.write("Demo superuser 'admin' exists.")
            elif admin.check_password(password_file.read_text().strip()):
                self.stdout.write(f"Demo superuser: admin (password in {password_file})")
            else:
                password_file.unlink()
                self.stdout.write("Demo superuser 'admin' has a password of its own now.")
            return
        password_file.unlink(missing_ok=True)
        password = secret_file(password_file, lambda: secrets.token_urlsafe(12))
        user_model.objects.create_superuser("admin", "admin@example.com", password)
        self.stdout.write(self.style.SUCCESS(f"Created demo superuser: admin / {password}"))
