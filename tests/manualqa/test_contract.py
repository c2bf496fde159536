"""The public contract that a restructure must not change: registered Celery task names, URL
names and routes, and the OpenAPI schema.

Queued messages name their task, templates and bookmarks name URLs, API clients read the
schema, so each is pinned to the files in ``tests/manualqa/contract/``. A change to any of them
is a change of behaviour: make it on purpose, then write the files anew with
``MANUALQA_WRITE_CONTRACT=1 make test PYTEST_ARGS=tests/manualqa/test_contract.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from manualqa.celery import app

CONTRACT = Path(__file__).resolve().parent / "contract"


def task_names() -> list[str]:
    app.loader.import_default_modules()
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def url_routes() -> list[list[str]]:
    def walk(resolver, prefix="", namespace=""):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
                yield from walk(pattern, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                yield namespace + (pattern.name or ""), prefix + str(pattern.pattern)

    return [list(route) for route in sorted(set(walk(get_resolver())))]


def openapi_schema() -> dict:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))


@pytest.mark.parametrize(
    ("name", "read"),
    [("tasks", task_names), ("routes", url_routes), ("openapi", openapi_schema)],
)
def test_the_public_contract_is_unchanged(name, read):
    path = CONTRACT / f"{name}.json"
    now = read()
    if os.environ.get("MANUALQA_WRITE_CONTRACT"):
        path.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    assert now == json.loads(path.read_text()), f"{name} changed; see this module's docstring"
