from django.apps import AppConfig


class CurationConfig(AppConfig):
    """Manuals, their documents and chunks, and (from Stage 2) generated QA pairs."""

    name = "curation"
    verbose_name = "Curation"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_ensure_roles, dispatch_uid="curation.ensure_roles")


def _ensure_roles(sender, **kwargs) -> None:
    # After every app's migrate, so the permissions of every app exist by the last call.
    from curation.services.review import roles_ensure

    roles_ensure()
