from django.apps import AppConfig


class CurationConfig(AppConfig):
    """Manuals, their documents and chunks, and (from Stage 2) generated QA pairs."""

    name = "curation"
    verbose_name = "Curation"
