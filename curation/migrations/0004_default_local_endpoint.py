"""Create the embedded default endpoint: the bundled SmolLM2-135M-Instruct on the gpu worker."""

from django.db import migrations

DEFAULT_NAME = "Local SmolLM2-135M"


def create_default(apps, schema_editor):
    endpoint_model = apps.get_model("curation", "LLMEndpoint")
    endpoint_model.objects.get_or_create(
        name=DEFAULT_NAME,
        defaults={
            "kind": "local",
            "model": "",
            "description": "Bundled SmolLM2-135M-Instruct, run by the gpu-queue worker on CPU.",
            "temperature": 0.2,
            "max_tokens": 256,
            "max_concurrency": 1,
            "timeout_s": 600,
            "context_window": 2048,
        },
    )


def remove_default(apps, schema_editor):
    apps.get_model("curation", "LLMEndpoint").objects.filter(
        name=DEFAULT_NAME, runs__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("curation", "0003_llm_endpoints_generation_qa_pairs")]
    operations = [migrations.RunPython(create_default, remove_default)]
