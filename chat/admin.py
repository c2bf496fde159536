"""Admin pages for assistants, and read-only pages for what owners said and were told.

Assistants are configuration, edited here. Conversations, messages, feedback and preferences
are records of what happened: they are read, never written, in the admin (a thumbs-down's QA
pair is corrected in the review queue, where it links from the feedback page).
"""

from __future__ import annotations

import functools
import json
import operator

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from chat.models import Assistant, Conversation, Feedback, Message, Preference
from manualqa.admin_tools import (
    ChoicesFilter,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    html_table,
)


def _short(text: str, length: int = 100) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


class _ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "mode",
        "endpoint",
        "retrieval",
        "top_k",
        "answer_style",
        "min_score",
        "is_default",
        "is_active",
        "conversation_count",
    )
    list_select_related = ("endpoint", "reranker")
    list_filter = ("mode", "answer_style", "is_active", "is_default", "retrieval")
    search_fields = ("name", "description")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("manuals",)
    fieldsets = [
        (None, {"fields": ("name", "slug", "description", "is_active", "is_default")}),
        (
            "Answering",
            {"fields": ("mode", "answer_style", "endpoint", "manuals", "prompt_format")},
        ),
        ("Generation", {"fields": ("system_prompt", "temperature", "max_tokens")}),
        (
            "Retrieval and declining",
            {
                "fields": (
                    "retrieval",
                    "top_k",
                    "min_score",
                    "min_coverage",
                    "match_questions",
                    "reranker",
                )
            },
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(conversation_total=Count("conversations"))

    @admin.display(description="Conversations", ordering="conversation_total")
    def conversation_count(self, obj: Assistant) -> int:
        return obj.conversation_total


class MessageInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = Message
    fields = ("role", "content", "declined", "extractive", "error", "latency_ms", "created_at")


@admin.register(Conversation)
class ConversationAdmin(_ReadOnlyAdmin):
    list_display = ("__str__", "assistant", "owner", "anonymous", "messages", "updated_at")
    list_select_related = ("assistant", "owner")
    list_filter = ("assistant",)
    search_fields = ("title",)
    raw_id_fields = ("owner",)
    exclude = ("session_key",)  # an anonymous owner's session, digested; still no one's to see
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description="Messages", ordering="message_total")
    def messages(self, obj: Conversation) -> int:
        return obj.message_total

    @admin.display(description="Anonymous", boolean=True)
    def anonymous(self, obj: Conversation) -> bool:
        return obj.owner_id is None


_ANSWER = Q(role=Message.Role.ASSISTANT)


class AnswerOutcomeFilter(ChoicesFilter):
    title = "outcome"
    parameter_name = "outcome"
    options = {
        "answered": ("Answered", _ANSWER & Q(declined=False, extractive=False, error="")),
        "declined": ("Declined", _ANSWER & Q(declined=True)),
        "extractive": ("Extractive", _ANSWER & Q(extractive=True)),
        "failed": ("Failed", _ANSWER & ~Q(error="")),
    }


#: Why ``chat.verification`` cuts a sentence that states something (an empty sentence or a
#: decline is dropped without being counted against the model).
_CUT_REASONS = ("weak", "number", "negation")
#: An answer with a sentence cut, as JSON containment that PostgreSQL answers in one query.
_CUT_VERDICTS = functools.reduce(
    operator.or_,
    (Q(verification__contains=[{"supported": False, "reason": r}]) for r in _CUT_REASONS),
)


class SentencesCutFilter(ChoicesFilter):
    """Answers some of whose model sentences were cut as unsupported by the passages."""

    title = "sentences cut"
    parameter_name = "cut"
    options = {
        "yes": ("Some sentences cut", _CUT_VERDICTS),
        "no": ("None cut", lambda messages: messages.filter(_ANSWER).exclude(_CUT_VERDICTS)),
    }


@admin.register(Message)
class MessageAdmin(_ReadOnlyAdmin):
    """What owners asked and were told, and for reviewers what the model wrote before its
    sentences were checked: the raw output, the verdict on each sentence, whether the loop
    guard stopped it, and why an answer was declined or fell back to the quote."""

    list_display = (
        "short_content",
        "role",
        "assistant",
        "answer_style",
        "declined",
        "extractive",
        "looped",
        "latency_ms",
        "ttft_ms",
        "completion_tokens",
        "created_at",
    )
    list_select_related = ("assistant",)
    list_filter = (
        "role",
        AnswerOutcomeFilter,
        "answer_style",
        "looped",
        SentencesCutFilter,
        "assistant",
    )
    search_fields = ("content",)
    raw_id_fields = ("conversation", "reply_to")
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ("conversation", "role", "assistant", "reply_to", "created_at")}),
        (
            "What the owner read",
            {
                "fields": (
                    "content",
                    "style",
                    "quote_shown",
                    "citation_links",
                    "declined",
                    "extractive",
                    "error",
                )
            },
        ),
        (
            "What the model wrote, and what was checked",
            {"fields": ("raw_output", "verification_table", "looped", "checks_json")},
        ),
        (
            "Cost",
            {"fields": Message.COSTS},
        ),
    ]
    readonly_fields = (
        "style",
        "quote_shown",
        "citation_links",
        "raw_output",
        "verification_table",
        "checks_json",
    )

    @admin.display(description="Text")
    def short_content(self, obj: Message) -> str:
        return _short(obj.content or f"[error] {obj.error}")

    @admin.display(description="Answer style", ordering="answer_style")
    def style(self, obj: Message) -> str:
        if obj.answer_style in Assistant.AnswerStyle.values:
            return Assistant.AnswerStyle(obj.answer_style).label
        return obj.answer_style or "-"

    @admin.display(description="Quote from the manual")
    def quote_shown(self, obj: Message) -> str:
        if not obj.quote_text:
            return "-"
        quote = obj.quote or {}
        numbers = ", ".join(f"[{n}]" for n in quote.get("numbers") or []) or "-"
        if obj.shows_quote and obj.quote_text.strip() != obj.content.strip():
            state = "shown under the answer"
        elif obj.quote_text.strip() == obj.content.strip():
            state = "the answer itself"
        else:
            state = "not shown"
        return format_html(
            '<div style="white-space: pre-wrap">{}</div><p class="help">Cites {}; {} words, '
            "key-term coverage {}, score {}; {}.</p>",
            obj.quote_text,
            numbers,
            quote.get("words", "-"),
            quote.get("coverage", "-"),
            quote.get("score", "-"),
            state,
        )

    @admin.display(description="Citations")
    def citation_links(self, obj: Message) -> str:
        if not obj.citations:
            return "-"
        return format_html_join(
            "",
            '<div>[{}] <a href="{}">{}</a> <span class="help">{} · similarity {}{}</span></div>',
            (
                (
                    citation.get("n"),
                    citation.get("url") if str(citation.get("url", "")).startswith("/") else "",
                    citation.get("heading_path") or citation.get("title") or "-",
                    citation.get("source_name", ""),
                    citation.get("score", "-"),
                    "" if citation.get("in_prompt", True) else " · not in the prompt",
                )
                for citation in obj.citations
            ),
        )

    @admin.display(description="Raw model output")
    def raw_output(self, obj: Message) -> str:
        if not obj.raw_content:
            return "-"
        return format_html('<div style="white-space: pre-wrap">{}</div>', obj.raw_content)

    @admin.display(description="Verification, sentence by sentence")
    def verification_table(self, obj: Message) -> str:
        if not obj.verification:
            return "-"
        return html_table(
            ("Sentence", "Kept?", "Reason", "Detail", "Score", "Passage"),
            (
                (
                    verdict.get("text", ""),
                    "kept" if verdict.get("supported") else "cut",
                    verdict.get("reason", ""),
                    verdict.get("detail", "") or "-",
                    _number(verdict.get("score")),
                    f"[{verdict['passage']}]" if verdict.get("passage") else "-",
                )
                for verdict in obj.verification
            ),
            css_class="chat-verification",
        )

    @admin.display(description="Checks")
    def checks_json(self, obj: Message) -> str:
        if not obj.checks:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(obj.checks, indent=2, ensure_ascii=False))


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


@admin.register(Feedback)
class FeedbackAdmin(_ReadOnlyAdmin):
    list_display = ("rating", "short_comment", "answer", "review_pair", "created_at")
    list_select_related = ("message", "qa_pair")
    list_filter = ("rating",)
    search_fields = ("comment", "message__content")
    raw_id_fields = ("message", "qa_pair", "user")
    exclude = ("session_key",)

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
    exclude = ("session_key",)

    @admin.display(description="Question")
    def short_question(self, obj: Preference) -> str:
        return _short(obj.question)
