"""REST API for chat (DRF). Views parse input and call ``chat.services`` / ``chat.selectors``.

Owners need no account: anonymous requests are allowed and scoped to the browser session
(token- or session-authenticated users are scoped to themselves). Nobody reads another
owner's conversations, messages, feedback or preferences: those ids answer 404.

* ``POST /api/chat/`` ``{assistant?, question, conversation?, stream?}``: an answer with its
  citations, latency and token counts; with ``stream: true`` server-sent events (``started``,
  ``citations``, ``token``..., then ``done`` or ``failed``; see ``chat.events``).
* ``GET /api/chat/assistants/``: the assistants an owner can choose.
* ``GET /api/chat/conversations/`` and ``GET /api/chat/conversations/{id}/`` (with messages).
* ``GET|POST /api/chat/feedback/`` ``{message, rating: up|down, comment?}``.
* ``GET|POST /api/chat/preferences/`` ``{message_a, message_b, chosen: a|b|tie}``.

Errors: 400 naming the field and the problem, 404 for what is not the owner's, 429 with
``Retry-After`` over the rate limit, 502 when the model failed (the body still carries the
stored answer row, with its ``error``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from chat import selectors, services
from chat.events import ChatEvent, Done, Failed, answer_payload, event_to_sse
from chat.models import Assistant, Conversation, Feedback, Message, Preference
from chat.owners import Owner, existing_owner, owner_from_request
from manualqa.streaming import event_stream


class _CSRFForSessionOwners(SessionAuthentication):
    """Gives anonymous session owners the CSRF check DRF gives signed-in session users: their
    conversations hang on a cookie, so a form on another site must not write as them."""

    def check(self, request: Request) -> None:
        self.enforce_csrf(request)


class ChatAPIView(GenericAPIView):
    """Base of the chat API: open to anonymous owners, CSRF-checked for cookie-based writes."""

    permission_classes = [permissions.AllowAny]

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        cookie_owner = request.auth is None and not request.user.is_authenticated
        if cookie_owner and request.method not in permissions.SAFE_METHODS:
            _CSRFForSessionOwners().check(request)

    def owner(self, request: Request) -> Owner:
        # DRF's request passes session and META through, and has the token user.
        return owner_from_request(request)

    def reader(self, request: Request) -> Owner | None:
        """The owner for a read, or None (nothing of theirs yet) without making a session."""
        return existing_owner(request)

    def posted(self, request: Request) -> tuple[Owner, dict[str, Any]]:
        """The owner of a write and its body, checked by the view's serializer first (a 400
        naming each bad field, before any session is made for a new owner)."""
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self.owner(request), data.validated_data

    def created(self, row: Any) -> Response:
        """201 with what the write made, as the view's serializer shows it."""
        return Response(self.get_serializer(row).data, status=status.HTTP_201_CREATED)

    def owned_page(self, request: Request, listed, model) -> Response:
        """A page of what ``listed(owner=...)`` lists for the reader; an empty page for a
        reader who has nothing yet (``model``'s empty queryset)."""
        owner = self.reader(request)
        page = self.paginate_queryset(listed(owner=owner) if owner else model.objects.none())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def _sse(events: Iterator[ChatEvent]) -> Iterator[str]:
    """The service's events on the wire; closing this (the client left) closes the answer."""
    with contextlib.closing(events):
        for event in events:
            yield event_to_sse(event)


def _chat_error(exc: services.ChatError) -> Response:
    """429 with Retry-After for the rate limit; every other refusal is a 400 on its field."""
    if isinstance(exc, services.RateLimited):
        return Response(
            {"detail": exc.message, "code": exc.code},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    raise ValidationError({exc.field: [exc.message]})


# --------------------------------------------------------------------------------------------
# Serializers


class AssistantSerializer(serializers.ModelSerializer):
    manuals = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    has_generator = serializers.SerializerMethodField()

    class Meta:
        model = Assistant
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "mode",
            "answer_style",
            "manuals",
            "has_generator",
        ]
        read_only_fields = fields

    def get_has_generator(self, assistant: Assistant) -> bool:
        return assistant.endpoint_id is not None


class AskSerializer(serializers.Serializer):
    assistant = serializers.CharField(
        required=False, help_text="Assistant id or slug; the default assistant when left out"
    )
    # Length and emptiness are checked by the service, whose message names the limit.
    question = serializers.CharField(allow_blank=True, trim_whitespace=False)
    conversation = serializers.IntegerField(
        required=False, allow_null=True, help_text="Continue this conversation of yours"
    )
    stream = serializers.BooleanField(default=False)


class AnswerSerializer(serializers.Serializer):
    """The shape of an answer (documentation only; the view writes ``answer_payload``)."""

    conversation = serializers.IntegerField()
    message = serializers.IntegerField()
    question_message = serializers.IntegerField()
    assistant = serializers.IntegerField()
    answer = serializers.CharField()
    citations = serializers.ListField(child=serializers.DictField())
    declined = serializers.BooleanField()
    extractive = serializers.BooleanField()
    answer_style = serializers.CharField()
    quote = serializers.DictField(
        allow_null=True, help_text="The quote from the manual shown with the answer"
    )
    looped = serializers.BooleanField(help_text="The model repeated itself and was stopped")
    dropped_sentences = serializers.IntegerField(
        help_text="Sentences of the model's text cut because the manual does not support them"
    )
    error = serializers.CharField()
    model = serializers.CharField()
    retrieval_score = serializers.FloatField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    ttft_ms = serializers.IntegerField(allow_null=True)
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class FeedbackBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Feedback
        fields = ["rating", "comment", "qa_pair", "updated_at"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    feedback = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "assistant",
            "reply_to",
            "content",
            "citations",
            "declined",
            "extractive",
            "answer_style",
            "quote",
            "error",
            *Message.COSTS,
            "created_at",
            "feedback",
        ]
        read_only_fields = fields

    def get_feedback(self, message: Message) -> dict | None:
        feedback = getattr(message, "feedback", None)
        return FeedbackBriefSerializer(feedback).data if feedback is not None else None


class ConversationSerializer(serializers.ModelSerializer):
    assistant = AssistantSerializer(read_only=True)
    message_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Conversation
        fields = ["id", "title", "assistant", "message_count", "created_at", "updated_at"]
        read_only_fields = fields


class ConversationDetailSerializer(ConversationSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages"]
        read_only_fields = fields

    def get_messages(self, conversation: Conversation) -> list[dict]:
        messages = selectors.conversation_messages(conversation=conversation)
        return MessageSerializer(messages, many=True).data


class FeedbackSerializer(serializers.ModelSerializer):
    message = serializers.IntegerField(source="message_id")
    comment = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        model = Feedback
        fields = ["id", "message", "rating", "comment", "qa_pair", "created_at", "updated_at"]
        read_only_fields = ["id", "qa_pair", "created_at", "updated_at"]


class PreferenceSerializer(serializers.ModelSerializer):
    message_a = serializers.IntegerField(source="message_a_id")
    message_b = serializers.IntegerField(source="message_b_id")

    class Meta:
        model = Preference
        fields = [
            "id",
            "question",
            "message_a",
            "message_b",
            "assistant_a",
            "assistant_b",
            "chosen",
            "created_at",
        ]
        read_only_fields = ["id", "question", "assistant_a", "assistant_b", "created_at"]


# --------------------------------------------------------------------------------------------
# Views


class ChatAskView(ChatAPIView):
    """Ask an assistant a question."""

    serializer_class = AskSerializer

    @extend_schema(
        request=AskSerializer,
        responses={
            200: AnswerSerializer,
            400: OpenApiResponse(description="A field names the problem"),
            404: OpenApiResponse(description="No such assistant or conversation of yours"),
            429: OpenApiResponse(description="Over the rate limit; see Retry-After"),
            502: OpenApiResponse(AnswerSerializer, description="The model failed"),
        },
        description="With stream=true: text/event-stream of started, citations, token..., "
        "then done (the answer, as in the JSON response) or failed.",
    )
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        owner, data = self.posted(request)
        if data.get("assistant"):
            assistant = selectors.assistant_get(ref=data["assistant"])
        else:
            assistant = selectors.assistant_default()
            if assistant is None:
                raise ValidationError({"assistant": ["Name an assistant: there is no default."]})
        conversation = None
        if data.get("conversation") is not None:
            conversation = selectors.conversation_get(
                owner=owner, conversation_id=data["conversation"]
            )
        try:
            events = services.answer_stream(
                assistant=assistant,
                question=data["question"],
                owner=owner,
                conversation=conversation,
            )
        except services.ChatError as exc:
            return _chat_error(exc)
        if data["stream"]:
            return event_stream(request, _sse(events))
        message = None
        for event in events:
            if isinstance(event, Done | Failed):
                message = event.message
        if message is None:  # pragma: no cover - every stream ends with a stored answer
            return Response({"detail": "The answer failed."}, status=status.HTTP_502_BAD_GATEWAY)
        code = status.HTTP_502_BAD_GATEWAY if message.error else status.HTTP_200_OK
        return Response(answer_payload(message), status=code)


class AssistantListView(ChatAPIView):
    """The assistants an owner can choose, the default first."""

    serializer_class = AssistantSerializer
    pagination_class = None

    @extend_schema(operation_id="chat_assistants_list", responses=AssistantSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(self.get_serializer(selectors.assistants_available(), many=True).data)


class ConversationListView(ChatAPIView):
    """Your conversations, most recent first."""

    serializer_class = ConversationSerializer

    def get_queryset(self):
        owner = self.reader(self.request)
        return selectors.conversations_for(owner=owner) if owner else Conversation.objects.none()

    @extend_schema(operation_id="chat_conversations_list")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ConversationDetailView(ChatAPIView):
    """One of your conversations with its messages."""

    serializer_class = ConversationDetailSerializer

    def get(self, request: Request, pk: int) -> Response:
        owner = self.reader(request)
        if owner is None:
            raise Http404("No such conversation.")
        conversation = selectors.conversation_get(owner=owner, conversation_id=pk)
        return Response(self.get_serializer(conversation).data)


class FeedbackView(ChatAPIView):
    """Your feedback (GET), or thumbs up/down on one of your answers (POST)."""

    serializer_class = FeedbackSerializer

    @extend_schema(operation_id="chat_feedback_list")
    def get(self, request: Request) -> Response:
        return self.owned_page(request, selectors.feedback_for, Feedback)

    @extend_schema(responses={201: FeedbackSerializer})
    def post(self, request: Request) -> Response:
        owner, data = self.posted(request)
        message = selectors.message_get(owner=owner, message_id=data["message_id"])
        try:
            feedback = services.feedback_submit(
                owner=owner,
                message=message,
                rating=data["rating"],
                comment=data.get("comment", ""),
            )
        except services.ChatError as exc:
            return _chat_error(exc)
        return self.created(feedback)


class PreferenceView(ChatAPIView):
    """Your compare-mode preferences (GET), or which of two answers was better (POST)."""

    serializer_class = PreferenceSerializer

    @extend_schema(operation_id="chat_preferences_list")
    def get(self, request: Request) -> Response:
        return self.owned_page(request, selectors.preferences_for, Preference)

    @extend_schema(responses={201: PreferenceSerializer})
    def post(self, request: Request) -> Response:
        owner, data = self.posted(request)
        message_a = selectors.message_get(owner=owner, message_id=data["message_a_id"])
        message_b = selectors.message_get(owner=owner, message_id=data["message_b_id"])
        try:
            preference = services.preference_record(
                owner=owner, message_a=message_a, message_b=message_b, chosen=data["chosen"]
            )
        except services.ChatError as exc:
            return _chat_error(exc)
        return self.created(preference)
