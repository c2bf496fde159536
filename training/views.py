"""Training pages for the Trainer role: launch, job list, and the live job page."""

from __future__ import annotations

import functools

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from manualqa.forms import add_errors_above, flash_service
from manualqa.jobs.views import job_status_view
from manualqa.lib.gguf_export import QUANTS
from training import exports, jobs
from training.models import DatasetSnapshot, SavedPreset, TrainingJob


class LaunchForm(forms.Form):
    """Preset first; the advanced fields override the preset's values when filled in."""

    snapshot = forms.ModelChoiceField(queryset=DatasetSnapshot.objects.select_related("manual"))
    preset = forms.ChoiceField()
    name = forms.CharField(required=False, max_length=200)
    base_model = forms.CharField(
        required=False,
        max_length=500,
        help_text="Empty: the preset's model (the bundled SmolLM2-135M for CPU quick).",
    )
    max_steps = forms.IntegerField(required=False, min_value=1)
    num_train_epochs = forms.FloatField(required=False, min_value=0.01)
    learning_rate = forms.FloatField(required=False, min_value=0)
    lora_r = forms.IntegerField(required=False, min_value=1)
    lora_alpha = forms.IntegerField(required=False, min_value=1)
    max_length = forms.IntegerField(required=False, min_value=16)
    per_device_train_batch_size = forms.IntegerField(required=False, min_value=1)
    save_steps = forms.IntegerField(required=False, min_value=1)
    method = forms.ChoiceField(
        required=False, choices=[("", "Preset's"), *TrainingJob.Method.choices]
    )
    dataset_format = forms.ChoiceField(
        required=False,
        label="Records",
        choices=[("", "Preset's"), ("pairs", "Question -> answer"), ("raft", "RAFT")],
    )
    raft_oracle_p = forms.FloatField(
        required=False, min_value=0, max_value=1, label="RAFT: P (source kept)"
    )
    raft_passages = forms.IntegerField(
        required=False, min_value=1, max_value=10, label="RAFT: passages (k)"
    )
    raft_distractors = forms.ChoiceField(
        required=False,
        label="RAFT: distractors",
        choices=[("", "Preset's"), ("retrieved", "Retrieved"), ("random", "Random")],
    )
    save_as = forms.CharField(
        required=False,
        max_length=120,
        label="Save as a preset",
        help_text="Optional: keep these settings under this name for later launches.",
    )

    ADVANCED = (
        "max_steps",
        "num_train_epochs",
        "learning_rate",
        "lora_r",
        "lora_alpha",
        "max_length",
        "per_device_train_batch_size",
        "save_steps",
        "method",
        "dataset_format",
        "raft_oracle_p",
        "raft_passages",
        "raft_distractors",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from training.presets import PRESETS

        saved = [(p.key, f"{p.label} (saved)") for p in SavedPreset.objects.all()]
        self.fields["preset"].choices = [(key, p.label) for key, p in PRESETS.items()] + saved

    def overrides(self) -> dict:
        return {
            key: self.cleaned_data[key]
            for key in self.ADVANCED
            if self.cleaned_data.get(key) not in (None, "")
        }


@login_required
@permission_required("training.view_trainingjob", raise_exception=True)
@require_GET
def training_home(request: HttpRequest) -> HttpResponse:
    jobs_list = TrainingJob.objects.select_related("snapshot", "created_by")[:50]
    return render(request, "training/job_list.html", {"jobs": jobs_list})


@login_required
def job_launch(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("training.launch_trainingjob"):
        raise PermissionDenied
    from training.presets import PRESETS

    form = LaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        saved = None
        try:
            # One transaction: a launch that is refused does not leave its preset saved.
            with transaction.atomic():
                if form.cleaned_data["save_as"]:
                    saved = jobs.saved_preset_create(
                        user=request.user,
                        label=form.cleaned_data["save_as"],
                        base_preset=form.cleaned_data["preset"],
                        base_model=form.cleaned_data["base_model"],
                        overrides=form.overrides(),
                    )
                job = jobs.training_job_create(
                    snapshot=form.cleaned_data["snapshot"],
                    user=request.user,
                    name=form.cleaned_data["name"],
                    base_model=form.cleaned_data["base_model"],
                    preset=form.cleaned_data["preset"],
                    overrides=form.overrides(),
                )
        except ValidationError as exc:
            add_errors_above(form, exc)
        else:
            if saved is not None:
                messages.success(request, f"Preset “{saved.label}” saved.")
            messages.success(request, f"Training job #{job.pk} queued.")
            return redirect("training:job", job_id=job.pk)
    context = {"form": form, "presets": PRESETS, "saved_presets": SavedPreset.objects.all()}
    return render(request, "training/job_launch.html", context)


@login_required
@permission_required("training.view_trainingjob", raise_exception=True)
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(TrainingJob.objects.select_related("snapshot__manual"), pk=job_id)
    context = {
        "job": job,
        "exports": exports.job_exports(job),
        "quants": QUANTS,
        "tracking": jobs.training_job_tracking(job),
    }
    return render(request, "training/job_detail.html", context)


def _job_progress(job: TrainingJob) -> dict:
    """What the job page polls besides the status: progress, metrics for the loss curve, and
    the log tail."""
    return {
        "step": job.step,
        "total_steps": job.total_steps,
        "epoch": job.epoch,
        "eta_s": job.eta_s,
        "metrics": job.metrics,
        "log_tail": job.log_tail[-4000:],
        "final_train_loss": job.final_train_loss,
        "eval_loss": job.eval_loss,
        "tokens_per_s": job.tokens_per_s,
        "cancel_requested": job.cancel_requested,
    }


job_status = job_status_view(
    TrainingJob, "job_id", permission="training.view_trainingjob", extra=_job_progress
)


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    return _transition(request, job_id, jobs.training_job_cancel, "Cancel requested.")


@login_required
@require_POST
def job_resume(request: HttpRequest, job_id: int) -> HttpResponse:
    return _transition(request, job_id, jobs.training_job_resume, "Job queued to resume.")


@login_required
@require_POST
def job_export(request: HttpRequest, job_id: int) -> HttpResponse:
    quant = request.POST.get("quant", "q8_0")
    return _transition(
        request,
        job_id,
        functools.partial(exports.model_export_queue, quant=quant),
        f"GGUF export ({quant}) queued: the log below says when it is done.",
    )


def _transition(request: HttpRequest, job_id: int, service, done: str) -> HttpResponse:
    job = get_object_or_404(TrainingJob, pk=job_id)
    flash_service(request, service, done, job=job, user=request.user)
    return redirect("training:job", job_id=job.pk)
