"""Write each registered model's training format onto its LLM endpoint.

Chat used to look the format up through the training job that registered the endpoint; it now
reads ``LLMEndpoint.prompt_format`` and ``system_prompt``, which a job writes when it registers
its model. This fills them in for models registered before (the newest job wins, as the lookup
did). Reversing leaves the fields as they are: the previous code did not read them.
"""

from django.db import migrations


def write_trained_formats(apps, schema_editor):
    TrainingJob = apps.get_model("training", "TrainingJob")
    done = set()
    jobs = (
        TrainingJob.objects.filter(registered_endpoint__isnull=False)
        .select_related("snapshot", "registered_endpoint")
        .order_by("-created_at")
    )
    for job in jobs:
        endpoint = job.registered_endpoint
        if endpoint.pk in done:
            continue
        done.add(endpoint.pk)
        endpoint.prompt_format = job.snapshot.prompt_format
        endpoint.system_prompt = job.snapshot.system_prompt
        endpoint.save(update_fields=["prompt_format", "system_prompt"])


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0008_llm_endpoint_trained_format"),
        ("training", "0004_evaluation_runs"),
    ]

    operations = [migrations.RunPython(write_trained_formats, migrations.RunPython.noop)]
