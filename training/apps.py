from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Dataset snapshots, LoRA/QLoRA training jobs and the models they register (Stage 4)."""

    name = "training"
    verbose_name = "Training"
