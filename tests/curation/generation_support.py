"""Helpers shared by the generation tests: a small embedded manual and a scripted LLM."""

from __future__ import annotations

import re

from curation import qa, services
from curation.models import LLMEndpoint, Manual
from curation.services import CleanDocument

PAGES = {
    "charging.md": (
        "Charging",
        "# Charging\n\n## Opening the Charge Port\n\nPress the button on the charge cable to open "
        "the charge port door. You can also touch Controls > Charge Port on the touchscreen.\n\n"
        "## Manual Release\n\nIf the vehicle has no power, pull the charge port release cable in "
        "the trunk on the left side to open the door.\n",
    ),
    "tires.md": (
        "Tires",
        "# Tires\n\n## Tire Pressure\n\nInflate 18 inch tires to 42 PSI (290 kPa) cold, front "
        "and rear. Check the pressure once a month.\n\n## Rotation\n\nRotate the tires every "
        "10,000 km to keep wear even.\n",
    ),
}


def make_manual(name: str = "Generation manual") -> Manual:
    """A two-page manual with four embedded chunks, built through the real services."""
    manual = services.manual_get_or_create(name=name)
    for source_name, (title, markdown) in PAGES.items():
        services.document_upsert(
            manual=manual,
            clean=CleanDocument(source_name, "", title, markdown, len(markdown.split())),
        )
    services.chunks_embed_pending(manual=manual)
    return manual


def scripted_responder(messages: list[dict[str, str]]) -> str:
    """Answers like a well-behaved model: a question list, or an answer quoting the text."""
    user = messages[-1]["content"]
    section = re.search(r"Section: (.*)", user).group(1).split(" > ")[-1]
    if messages[0]["content"] == qa.DEFAULT_QUESTIONS_SYSTEM_PROMPT:
        count = int(re.search(r"up to (\d+) distinct", user).group(1))
        return "\n".join(
            f"{i}. What does the manual say about {section.lower()}, point {i}?"
            for i in range(1, count + 1)
        )
    text = user.split('"""')[1].strip()
    return f"According to the manual: {text.splitlines()[0]}"


def openai_endpoint(base_url: str, **overrides) -> LLMEndpoint:
    fields = {
        "name": "Fake OpenAI",
        "kind": LLMEndpoint.Kind.OPENAI,
        "model": "fake-model",
        "base_url": base_url,
        "max_concurrency": 4,
        "max_retries": 2,
        "timeout_s": 5,
        "price_in_per_1k": "0.0005",
        "price_out_per_1k": "0.0015",
        **overrides,
    }
    return LLMEndpoint.objects.create(**fields)
