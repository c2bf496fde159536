"""Question sets that grow from use: reviewed thumbs-down pairs, kept as immutable JSONL versions;
an evaluation run can take its questions from one."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0013_local_gguf_models"),
        ("training", "0005_endpoint_trained_format"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="evaluationrun",
            name="question_source",
            field=models.CharField(
                choices=[
                    ("snapshot", "Test split of a dataset snapshot"),
                    ("upload", "Uploaded JSONL file"),
                    ("saved_set", "Saved question set"),
                ],
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="QuestionSet",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("slug", models.SlugField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "manual",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="question_sets",
                        to="curation.manual",
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
                "permissions": [
                    ("grow_questionset", "Can add reviewed thumbs-down pairs to question sets")
                ],
            },
        ),
        migrations.CreateModel(
            name="QuestionSetVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.PositiveIntegerField()),
                (
                    "jsonl",
                    models.TextField(blank=True, help_text="The questions, one JSON record a line"),
                ),
                ("content_hash", models.CharField(max_length=64)),
                ("question_count", models.PositiveIntegerField(default=0)),
                (
                    "added_pairs",
                    models.JSONField(
                        blank=True, default=list, help_text="Ids of the QA pairs this version added"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "question_set",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="training.questionset",
                    ),
                ),
            ],
            options={
                "ordering": ["question_set", "-version"],
            },
        ),
        migrations.AddField(
            model_name="evaluationrun",
            name="question_set_version",
            field=models.ForeignKey(
                blank=True,
                help_text="The saved question set version the questions were copied from",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="evaluation_runs",
                to="training.questionsetversion",
            ),
        ),
        migrations.AddConstraint(
            model_name="questionsetversion",
            constraint=models.UniqueConstraint(
                fields=("question_set", "version"), name="unique_question_set_version"
            ),
        ),
    ]
