"""Loading the chat's models when a web worker starts (both server entry points)."""

from __future__ import annotations

import os
import threading


def start() -> None:
    """Load the embedding model and the manuals' vocabulary in a background thread, so the
    first owner of a new web worker does not wait for them (seconds); ``CHAT_WARM_UP=0``
    turns it off."""
    if os.environ.get("CHAT_WARM_UP", "1") != "0":
        threading.Thread(target=_warm_up, name="chat-warm-up", daemon=True).start()


def _warm_up() -> None:
    from chat.services import answering_warm_up

    answering_warm_up()
