"""The errors of chat's services: each has a message for people, a field and an HTTP status."""

from __future__ import annotations

import logging
import secrets

logger = logging.getLogger("chat.services")

# --------------------------------------------------------------------------------------------
# Errors


class ChatError(Exception):
    """A request the chat refuses, with a ``message`` for people, the ``field`` at fault and
    the HTTP ``status`` an API answers with."""

    status = 400
    code = "invalid"
    #: The field at fault when the raiser names none.
    field = "non_field_errors"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class QuestionInvalid(ChatError):
    code = "question_invalid"
    field = "question"


class QuestionTooLong(QuestionInvalid):
    code = "question_too_long"


class AssistantUnavailable(ChatError):
    code = "assistant_unavailable"
    field = "assistant"


class ConversationMismatch(ChatError):
    code = "conversation_mismatch"
    field = "conversation"


class RateLimited(ChatError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FeedbackInvalid(ChatError):
    code = "feedback_invalid"


class PreferenceInvalid(ChatError):
    code = "preference_invalid"


def owner_error(what: str, detail: str) -> tuple[str, dict[str, str]]:
    """What the owner reads when an answer fails, and what the record keeps for staff.

    The detail (an upstream URL, an HTTP body, an exception's text) is for developers: it is
    logged and kept in the answer's ``checks`` under ``error_detail`` (the admin shows it), and
    the owner gets a reference to quote instead (security review L1).
    """
    reference = secrets.token_hex(4)
    logger.warning("chat answer failed (reference %s): %s", reference, detail)
    error = (
        f"{what} (reference {reference}). Try again later, or tell the site's staff that reference."
    )
    return error, {"error_detail": detail, "error_reference": reference}
