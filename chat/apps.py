from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Assistants, conversations and feedback for car owners (Stage 5)."""

    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from chat.receivers import claim_anonymous_conversations, store_sentence_vectors
        from curation.signals import manual_embedded

        user_logged_in.connect(claim_anonymous_conversations, dispatch_uid="chat-claim-anonymous")
        manual_embedded.connect(store_sentence_vectors, dispatch_uid="chat-sentence-vectors")
