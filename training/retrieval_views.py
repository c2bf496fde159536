"""Pages for retrieval jobs (issue 18): launch one, follow it live, and switch a manual's
embedder (re-embed, or switch back) with the models they registered."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from curation.models import Manual, ReembedRun, RetrievalModel
from curation.services import embedders
from manualqa.forms import add_errors_above, flash_service
from manualqa.jobs.views import job_status_view
from training import retrieval_jobs
from training.models import DatasetSnapshot, QuestionSet, RetrievalJob
from training.retrievers.embedder import DEFAULTS
from training.retrievers.reranker import DEFAULTS as RERANKER_DEFAULTS


class RetrievalLaunchForm(forms.Form):
    """The kind and snapshot; the numbers override the trainer's defaults when filled in."""

    snapshot = forms.ModelChoiceField(queryset=DatasetSnapshot.objects.select_related("manual"))
    kind = forms.ChoiceField(choices=RetrievalJob.Kind.choices)
    name = forms.CharField(required=False, max_length=200)
    base_model = forms.CharField(
        required=False, max_length=500, help_text="Empty: the configured embedding model."
    )
    max_steps = forms.IntegerField(required=False, min_value=1)
    batch_size = forms.IntegerField(required=False, min_value=2)
    learning_rate = forms.FloatField(required=False, min_value=0)
    hard_negatives = forms.IntegerField(required=False, min_value=0, max_value=10)
    epochs = forms.IntegerField(required=False, min_value=1)
    threshold_question_set = forms.ModelChoiceField(
        queryset=QuestionSet.objects.order_by("name"),
        required=False,
        to_field_name="slug",
        label="Threshold question set (rerankers)",
        help_text=(
            "A saved set of owners' questions that holds the decline threshold: at most "
            f"{RERANKER_DEFAULTS['max_false_refusals']:.0%} of its answerable questions "
            "declined. Choose a development set, not the one the assistant is judged on."
        ),
    )

    NUMBERS = ("max_steps", "batch_size", "learning_rate", "hard_negatives", "epochs")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("threshold_question_set") and cleaned.get("kind") != "reranker":
            self.add_error("threshold_question_set", "Only a reranker has a decline threshold.")
        return cleaned

    def hyperparameters(self) -> dict:
        values = {
            key: self.cleaned_data[key]
            for key in self.NUMBERS
            if self.cleaned_data.get(key) not in (None, "")
        }
        if question_set := self.cleaned_data.get("threshold_question_set"):
            values["threshold_question_set"] = question_set.slug
        return values


class ReembedForm(forms.Form):
    manual = forms.ModelChoiceField(queryset=Manual.objects.select_related("embedder"))
    embedder = forms.ModelChoiceField(
        queryset=RetrievalModel.objects.filter(kind=RetrievalModel.Kind.EMBEDDER),
        required=False,
        empty_label="The configured default model",
    )


@login_required
@permission_required("training.view_retrievaljob", raise_exception=True)
def retrieval_home(request: HttpRequest) -> HttpResponse:
    """The jobs, the embedders, the manuals' embedders, and the launch form (POST)."""
    form = RetrievalLaunchForm(
        request.POST or None, initial={"snapshot": request.GET.get("snapshot")}
    )
    if request.method == "POST":
        if not request.user.has_perm("training.add_retrievaljob"):
            raise PermissionDenied
        if form.is_valid():
            try:
                job = retrieval_jobs.retrieval_job_create(
                    snapshot=form.cleaned_data["snapshot"],
                    user=request.user,
                    kind=form.cleaned_data["kind"],
                    name=form.cleaned_data["name"],
                    base_model=form.cleaned_data["base_model"],
                    hyperparameters=form.hyperparameters(),
                )
            except ValidationError as exc:
                add_errors_above(form, exc)
            else:
                messages.success(request, f"Retrieval job #{job.pk} queued.")
                return redirect("training:retrieval_job", job_id=job.pk)
    context = {
        "form": form,
        "defaults": DEFAULTS,
        "jobs": RetrievalJob.objects.select_related("snapshot", "registered_model")[:50],
        "models": RetrievalModel.objects.prefetch_related("manuals")[:50],
        "manuals": Manual.objects.select_related("embedder"),
        "runs": ReembedRun.objects.select_related("manual", "embedder")[:20],
        "reembed_form": ReembedForm(),
    }
    return render(request, "training/retrieval_list.html", context)


@login_required
@permission_required("training.view_retrievaljob", raise_exception=True)
@require_GET
def retrieval_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(
        RetrievalJob.objects.select_related("snapshot__manual", "registered_model"), pk=job_id
    )
    return render(request, "training/retrieval_job.html", {"job": job})


def _retrieval_job_progress(job: RetrievalJob) -> dict:
    """What the job page polls besides the status."""
    return {
        "label": f"{job.step}/{job.total_steps or '?'} steps"
        + (f", loss {job.loss:.4f}" if job.loss is not None else "")
        + (f", about {job.eta_s:.0f} s left" if job.eta_s else ""),
        "step": job.step,
        "total_steps": job.total_steps,
        "loss": job.loss,
        "eta_s": job.eta_s,
        "metrics": job.metrics,
    }


retrieval_job_status = job_status_view(
    RetrievalJob,
    "job_id",
    permission="training.view_retrievaljob",
    extra=_retrieval_job_progress,
)


@login_required
@require_POST
def retrieval_job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(RetrievalJob, pk=job_id)
    flash_service(
        request,
        retrieval_jobs.retrieval_job_cancel,
        "Cancel requested.",
        job=job,
        user=request.user,
    )
    return redirect("training:retrieval_job", job_id=job.pk)


@login_required
@require_POST
def reembed_launch(request: HttpRequest) -> HttpResponse:
    """Re-embed a manual with an embedder, or switch it back (one action)."""
    form = ReembedForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a manual and an embedder.")
        return redirect("training:retrievers")
    run = flash_service(
        request,
        embedders.reembed_run_create,
        lambda run: f"Re-embed #{run.pk} queued; chat keeps the old vectors until it switches.",
        manual=form.cleaned_data["manual"],
        embedder=form.cleaned_data["embedder"],
        user=request.user,
    )
    if run is None:
        return redirect("training:retrievers")
    return redirect("training:reembed_run", run_id=run.pk)


@login_required
@permission_required("curation.view_reembedrun", raise_exception=True)
@require_GET
def reembed_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ReembedRun.objects.select_related("manual", "embedder"), pk=run_id)
    return render(request, "training/reembed_run.html", {"run": run})


def _reembed_run_progress(run: ReembedRun) -> dict:
    return {"label": f"{run.done}/{run.total} chunks", "done": run.done}


reembed_run_status = job_status_view(
    ReembedRun, "run_id", permission="curation.view_reembedrun", extra=_reembed_run_progress
)


@login_required
@require_POST
def reembed_run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ReembedRun, pk=run_id)
    flash_service(
        request, embedders.reembed_run_cancel, "Cancel requested.", run=run, user=request.user
    )
    return redirect("training:reembed_run", run_id=run.pk)
