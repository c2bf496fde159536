from django.apps import AppConfig


class ManualQAConfig(AppConfig):
    """The project package as an app: it holds site-wide views, templates tags and commands."""

    name = "manualqa"
    verbose_name = "ManualQA"
