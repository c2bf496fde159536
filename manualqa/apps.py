from django.apps import AppConfig


class ManualQAConfig(AppConfig):
    """The project package: settings, the site's pages and roles, and what the apps share."""

    name = "manualqa"
    verbose_name = "ManualQA"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from manualqa import login_throttle  # noqa: F401 - connects its signal receiver

        post_migrate.connect(_ensure_roles, dispatch_uid="manualqa.ensure_roles")


def _ensure_roles(sender, **kwargs) -> None:
    # After every app's migrate, so the permissions of every app exist by the last call.
    from manualqa.roles import roles_ensure

    roles_ensure()
