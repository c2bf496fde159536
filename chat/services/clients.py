"""One LLM client per endpoint version, shared by the requests of a process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from django.db import connection

from curation.models import LLMEndpoint
from manualqa.lib.llm import LLMClient, make_client

# One client per endpoint version, shared by requests: HTTP connection pools, the boto3
# client and the endpoint's requests-per-minute limit then hold across requests. Bounded,
# because each client may hold connections (local models are cached separately).
_CLIENTS: OrderedDict[tuple[int, str], LLMClient] = OrderedDict()
_CLIENTS_LOCK = threading.Lock()
_CLIENTS_MAX = 8


def _client_for(endpoint: LLMEndpoint) -> LLMClient:
    key = (endpoint.pk, endpoint.updated_at.isoformat() if endpoint.updated_at else "")
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            _CLIENTS.move_to_end(key)
            return client
    client = make_client(endpoint.config())
    with _CLIENTS_LOCK:
        _CLIENTS[key] = client
        while len(_CLIENTS) > _CLIENTS_MAX:
            _CLIENTS.popitem(last=False)
    return client


def release_connection() -> None:
    """Give the database connection back while the model writes (seconds, and as long as the
    owner takes to read under ASGI): the record stage takes one again. With the web server's
    pool this returns it to the pool; otherwise it is closed and reopened (milliseconds)."""
    if not connection.in_atomic_block:
        connection.close()


def model_label(model: str) -> str:
    """The model as an answer names it to its owner: a local model by its folder's name, never
    the server's path to it (security review L1)."""
    return Path(model).name if model.startswith(("/", "~", ".")) or "\\" in model else model
