"""Writes for chat: answering owners' questions, feedback, compare-mode preferences, exports.

This is the API the chat page, its SSE view and the REST API are built on. Every function
takes keyword arguments only. Reads (assistants, an owner's conversations and messages) are in
``chat.selectors``; identity is a ``chat.owners.Owner`` (``owner_from_request(request)``).

Answering
---------
``answer_stream(*, assistant, question, owner, conversation=None) -> Iterator[ChatEvent]``
    Checks everything *before* returning the iterator, so a view can still answer with an
    error status: the question (empty -> ``QuestionInvalid``; longer than
    ``CHAT_MAX_QUESTION_CHARS`` -> ``QuestionTooLong``), the assistant (inactive ->
    ``AssistantUnavailable``), the conversation (another owner's -> ``Http404``; another
    assistant's -> ``ConversationMismatch``) and the owner's rate (``CHAT_RATE_LIMIT`` per user,
    or per IP without an account -> ``RateLimited`` with ``retry_after_s``). All are
    ``ChatError``s with a ``message`` for people, a ``field`` and an HTTP ``status``.

    Iterating then yields ``chat.events``: ``Started(conversation_id, message_id)`` once the
    question is stored (``message_id`` is the question's row; a new conversation is made when
    none was given), ``Citations(citations)``, at most one ``Quote(quote)`` (the manual's own
    words, first), ``Token(text)`` pieces (only sentences that passed verification), and
    finally ``Done(message)`` with the stored answer, or ``Failed(error, message)``. The answer
    row is written once, at the end: a failure stores empty ``content`` and the reason in
    ``error`` (never a placeholder text); an owner who goes away mid-answer leaves an answer
    row whose ``error`` says it was interrupted, and the model stops generating.
    ``chat.events.event_to_sse(event)`` renders any event as a server-sent event;
    ``chat.events.answer_payload(message)`` is the JSON of a finished answer.

``answer(*, assistant, question, owner, conversation=None) -> Message``
    The same, consumed: the stored answer (check ``message.error`` for a failure).

How an answer is made (``_answer_body``; every stage but the first and last is a plain
function of ``chat.answering``)
    1. **retrieve** (``chat.retrieval``): the assistant's manuals, its ``retrieval`` method and
       ``top_k``; in a conversation the previous question is read with the current one, so a
       follow-up that does not name its subject still finds it;
    2. **decide**: decline, without calling a model, when nothing retrieved is close enough
       (``min_score``), or when the question hinges on words the manual never uses
       (``min_coverage``), asks for a price, or asks for a figure in a unit the passages do not
       have (``chat.declines``). A decline says so plainly ("The manual does not say. ..."),
       says why, and lists the nearest passages (``declined=True``);
    3. **quote** (``chat.quoting``): the smallest span of the best passages that answers;
    4. by the assistant's ``answer_style``: ``quoted`` (and any assistant without an active
       endpoint) answers with the quote alone (``extractive=True``). ``grounded`` streams the
       quote, then asks the model for a sentence or two (64 tokens at most); ``generated``
       asks for the whole answer (the assistant's ``max_tokens``, 160 by default, not the
       endpoint's). The prompt (**build the prompt**): ``rag`` numbers the passages [1]..[k]
       and asks for citations, with up to ``CHAT_HISTORY_TURNS`` earlier exchanges;
       ``direct`` sends the question alone in the format the endpoint's model was trained
       with (``prompt_format=auto``: the format of the dataset snapshot of the Stage 4 job
       that registered the endpoint, ``inst`` for SageMaker, else chat), and its answer is
       checked against the retrieved passages all the same (cited with ``in_prompt: false``).
       Formats ``inst`` and ``alpaca`` are sent as raw prompts (``complete_prompt``/
       ``stream_prompt``, ``/v1/completions`` on OpenAI-compatible servers), ``chat`` as
       messages;
    5. **generate, guarded**: any endpoint's stream is read through a loop guard that stops
       it at the first repetition and keeps what came before;
    6. **verify**: each sentence as it completes is checked against the passages
       (``chat.verification``); only supported ones are streamed;
    7. **compose**: the verified text (``grounded``: with the quote under it); a ``generated``
       answer with too little support falls back to the quote;
    8. **record**: the answer, the quote, the model's raw output, a verdict per sentence,
       whether it looped, and why it declined or fell back.

Feedback and preferences
    ``feedback_submit(*, owner, message, rating, comment="") -> Feedback``: thumbs up or down
    on an answer of the owner's; giving it again changes it. A thumbs-down raises a pending
    ``QAPair`` (origin ``chat_feedback``, flag ``chat_feedback``) with the question, the
    model's answer and the first cited passage, scored like any pair and with a "created"
    revision that carries the owner's comment, so reviewers see it in the review queue and the
    pair's history, and correct the answer there.
    ``preference_record(*, owner, message_a, message_b, chosen) -> Preference`` stores which of
    two answers to the same question was better (compare mode: ask two assistants with two
    ``answer_stream`` calls, each in its own conversation).
    ``preferences_export_records()`` / ``preferences_export_jsonl(*, out)``: chosen/rejected
    pairs (``{"prompt", "chosen", "rejected", ...}``, the form trl's DPO trainer reads); ties
    are left out. ``python manage.py export_preferences`` writes them.

Assistants
    ``assistant_create(...)`` and ``assistant_ensure_default(*, manual, endpoint)`` (the
    bootstrap command's "Manual assistant (RAG)").

Layout: :mod:`.errors`, :mod:`.answering` (the checks and the answer path), :mod:`.clients`
(the shared LLM clients), :mod:`.feedback` (feedback, preferences, exports, claiming) and
:mod:`.assistants`. This package re-exports their public names.
"""

from chat.services.answering import (
    INTERRUPTED,
    answer,
    answer_policy,
    answer_stream,
    answering_warm_up,
)
from chat.services.assistants import (
    DEFAULT_ASSISTANT_NAME,
    assistant_create,
    assistant_ensure_default,
)
from chat.services.checks import question_validate, rate_limit_check
from chat.services.errors import (
    AssistantUnavailable,
    ChatError,
    ConversationMismatch,
    FeedbackInvalid,
    PreferenceInvalid,
    QuestionInvalid,
    QuestionTooLong,
    RateLimited,
)
from chat.services.feedback import (
    conversations_claim,
    feedback_submit,
    preference_record,
    preferences_export_jsonl,
    preferences_export_records,
)

__all__ = [
    "DEFAULT_ASSISTANT_NAME",
    "INTERRUPTED",
    "AssistantUnavailable",
    "ChatError",
    "ConversationMismatch",
    "FeedbackInvalid",
    "PreferenceInvalid",
    "QuestionInvalid",
    "QuestionTooLong",
    "RateLimited",
    "answer",
    "answer_policy",
    "answer_stream",
    "answering_warm_up",
    "assistant_create",
    "assistant_ensure_default",
    "conversations_claim",
    "feedback_submit",
    "preference_record",
    "preferences_export_jsonl",
    "preferences_export_records",
    "question_validate",
    "rate_limit_check",
]
