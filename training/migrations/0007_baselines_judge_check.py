"""Evaluation you can defend: each assistant's baseline run, and the judge's agreement with
people stored on the run that used it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_digest_session_keys"),
        ("training", "0006_question_sets"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="evaluationrun",
            name="judge_check",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The judge against people: {n, accuracy, kappa, sources, disagreements}",
            ),
        ),
        migrations.CreateModel(
            name="EvaluationBaseline",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("set_at", models.DateTimeField(auto_now=True)),
                (
                    "assistant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="evaluation_baseline",
                        to="chat.assistant",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="baselines",
                        to="training.evaluationrun",
                    ),
                ),
                (
                    "set_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
