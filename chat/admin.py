"""Admin pages for assistants, and read-only pages for what owners said and were told.

Assistants are configuration, edited here. Conversations, messages, feedback and preferences
are records of what happened: they are read, never written, in the admin (a thumbs-down's QA
pair is corrected in the review queue, where it links from the feedback page).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from chat.models import Assistant, Conversation, Feedback, Message, Preference


def _short(text: str, length: int = 100) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "mode",
        "endpoint",
        "retrieval",
        "top_k",
        "min_score",
        "is_default",
        "is_active",
        "conversation_count",
    )
    list_select_related = ("endpoint",)
    list_filter = ("mode", "is_active", "is_default", "retrieval")
    search_fields = ("name", "description")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("manuals",)
    fieldsets = [
        (None, {"fields": ("name", "slug", "description", "is_active", "is_default")}),
        ("Answering", {"fields": ("mode", "endpoint", "manuals", "prompt_format")}),
        ("Generation", {"fields": ("system_prompt", "temperature", "max_tokens")}),
        ("Retrieval", {"fields": ("retrieval", "top_k", "min_score", "match_questions")}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(conversation_total=Count("conversations"))

    @admin.display(description="Conversations", ordering="conversation_total")
    def conversation_count(self, obj: Assistant) -> int:
        return obj.conversation_total


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "content", "declined", "extractive", "error", "latency_ms", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(_ReadOnlyAdmin):
    list_display = ("__str__", "assistant", "owner", "anonymous", "messages", "updated_at")
    list_select_related = ("assistant", "owner")
    list_filter = ("assistant",)
    search_fields = ("title",)
    raw_id_fields = ("owner",)
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description="Messages", ordering="message_total")
    def messages(self, obj: Conversation) -> int:
        return obj.message_total

    @admin.display(description="Anonymous", boolean=True)
    def anonymous(self, obj: Conversation) -> bool:
        return obj.owner_id is None


class AnswerOutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [
            ("answered", "Answered"),
            ("declined", "Declined"),
            ("extractive", "Extractive"),
            ("failed", "Failed"),
        ]

    def queryset(self, request, queryset):
        answers = queryset.filter(role=Message.Role.ASSISTANT)
        if self.value() == "answered":
            return answers.filter(declined=False, extractive=False, error="")
        if self.value() == "declined":
            return answers.filter(declined=True)
        if self.value() == "extractive":
            return answers.filter(extractive=True)
        if self.value() == "failed":
            return answers.exclude(error="")
        return queryset


@admin.register(Message)
class MessageAdmin(_ReadOnlyAdmin):
    list_display = (
        "short_content",
        "role",
        "assistant",
        "declined",
        "extractive",
        "latency_ms",
        "ttft_ms",
        "completion_tokens",
        "created_at",
    )
    list_select_related = ("assistant",)
    list_filter = ("role", AnswerOutcomeFilter, "assistant")
    search_fields = ("content",)
    raw_id_fields = ("conversation", "reply_to")
    show_full_result_count = False

    @admin.display(description="Text")
    def short_content(self, obj: Message) -> str:
        return _short(obj.content or f"[error] {obj.error}")


@admin.register(Feedback)
class FeedbackAdmin(_ReadOnlyAdmin):
    list_display = ("rating", "short_comment", "answer", "review_pair", "created_at")
    list_select_related = ("message", "qa_pair")
    list_filter = ("rating",)
    search_fields = ("comment", "message__content")
    raw_id_fields = ("message", "qa_pair", "user")

    @admin.display(description="Comment")
    def short_comment(self, obj: Feedback) -> str:
        return _short(obj.comment) or "-"

    @admin.display(description="Answer")
    def answer(self, obj: Feedback) -> str:
        return _short(obj.message.content, 80)

    @admin.display(description="QA pair for review")
    def review_pair(self, obj: Feedback) -> str:
        if obj.qa_pair_id is None:
            return "-"
        url = reverse("admin:curation_qapair_change", args=[obj.qa_pair_id])
        return format_html('<a href="{}">#{} ({})</a>', url, obj.qa_pair_id, obj.qa_pair.status)


@admin.register(Preference)
class PreferenceAdmin(_ReadOnlyAdmin):
    list_display = ("short_question", "assistant_a", "assistant_b", "chosen", "created_at")
    list_select_related = ("assistant_a", "assistant_b")
    list_filter = ("chosen", "assistant_a", "assistant_b")
    search_fields = ("question",)
    raw_id_fields = ("message_a", "message_b", "user")

    @admin.display(description="Question")
    def short_question(self, obj: Preference) -> str:
        return _short(obj.question)
