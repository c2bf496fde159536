from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Assistants, conversations and feedback for car owners (Stage 5)."""

    name = "chat"
    verbose_name = "Chat"
