"""Evaluation pages for the Trainer role: launch a run, list runs, the report, exports.

Reading needs ``training.view_trainingjob`` and launching or cancelling
``training.launch_trainingjob``, the permissions the Trainer group already holds. The views
parse input and call ``training.evaluation``.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from manualqa.forms import add_service_errors, flash_service
from manualqa.jobs.views import job_status_view
from training import evaluation
from training.models import DatasetSnapshot, EvaluationRun, QuestionSetVersion, TrainingJob

LIST_LIMIT = 100


class QuestionSetVersionField(forms.ModelChoiceField):
    def label_from_instance(self, obj: QuestionSetVersion) -> str:
        return f"{obj} ({obj.question_count:,} questions)"


class EvaluationLaunchForm(forms.Form):
    """What ``evaluation_run_create`` takes; the service does the validation that matters."""

    name = forms.CharField(required=False, max_length=200, help_text="Empty: named for you.")
    snapshot = forms.ModelChoiceField(
        queryset=DatasetSnapshot.objects.select_related("manual"),
        required=False,
        label="Dataset snapshot (test split)",
        help_text="Its test split, with the approved answers as references.",
    )
    question_set_version = QuestionSetVersionField(
        queryset=QuestionSetVersion.objects.select_related("question_set").order_by(
            "question_set__name", "-version"
        ),
        required=False,
        label="…or a saved question set",
        help_text="A version of a set grown from owners' corrected thumbs-down answers.",
    )
    questions_file = forms.FileField(
        required=False,
        label="…or a question file (JSONL)",
        help_text='One {"id"?, "question", "answer"?, "sources"?, "must_include"?, "kind"?} '
        'per line; kind is a category ("fact", "procedure"...) reported on its own, and '
        '"unanswerable" marks a question the manual does not answer.',
    )
    assistants = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple
    )
    retrieval_only = forms.BooleanField(
        required=False, help_text="Measure retrieval alone: no generator runs; fast."
    )
    manual = forms.ModelChoiceField(
        queryset=None,
        required=False,
        help_text="Retrieval only: also measure the default retrieval over this manual.",
    )
    judge_endpoint = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="LLM judge (optional)",
        help_text="Grades correctness and faithfulness to the retrieved passages; its cost is "
        "counted from the endpoint's prices.",
    )
    judge_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        initial=evaluation.DEFAULT_JUDGE_PROMPT,
        help_text="Placeholders: {question}, {reference}, {context}, {answer}.",
    )
    training_job = forms.ModelChoiceField(
        queryset=TrainingJob.objects.all(), required=False, widget=forms.HiddenInput
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from chat.models import Assistant
        from curation.models import LLMEndpoint, Manual

        self.fields["assistants"].queryset = Assistant.objects.select_related("endpoint")
        self.fields["manual"].queryset = Manual.objects.all()
        self.fields["judge_endpoint"].queryset = LLMEndpoint.objects.filter(is_active=True)

    def clean_questions_file(self):
        upload = self.cleaned_data.get("questions_file")
        if upload is not None and upload.size > evaluation.MAX_QUESTIONS_BYTES:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; the limit is "
                f"{evaluation.MAX_QUESTIONS_BYTES:,}."
            )
        return upload


# The service's field names that the form calls something else.
_FORM_FIELDS = {"questions": "questions_file", "max_questions": None}


def _require_launcher(request: HttpRequest) -> None:
    if not request.user.has_perm("training.launch_trainingjob"):
        raise PermissionDenied


@login_required
@permission_required("training.view_trainingjob", raise_exception=True)
@require_GET
def evaluation_list(request: HttpRequest) -> HttpResponse:
    """All runs, newest first; ``?job=N`` shows the runs of one training job's model."""
    runs = EvaluationRun.objects.select_related("created_by", "snapshot", "manual")
    job = None
    if request.GET.get("job", "").isdigit():
        job = get_object_or_404(TrainingJob, pk=int(request.GET["job"]))
        runs = evaluation.evaluation_runs_for_job(job).select_related("manual")
    context = {"runs": runs.order_by("-created_at", "-id")[:LIST_LIMIT], "job": job}
    return render(request, "training/eval_list.html", context)


@login_required
def evaluation_launch(request: HttpRequest) -> HttpResponse:
    _require_launcher(request)
    initial = {}
    job = None
    if request.method == "GET" and request.GET.get("job", "").isdigit():
        job = get_object_or_404(
            TrainingJob.objects.select_related("snapshot"), pk=int(request.GET["job"])
        )
        initial = {"snapshot": job.snapshot, "training_job": job}
        if job.registered_endpoint_id is not None:
            from chat.models import Assistant

            initial["assistants"] = Assistant.objects.filter(endpoint_id=job.registered_endpoint_id)
    form = EvaluationLaunchForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        upload = data["questions_file"]
        try:
            run = evaluation.evaluation_run_create(
                user=request.user,
                name=data["name"],
                snapshot=data["snapshot"],
                question_set_version=data["question_set_version"],
                questions_jsonl=upload.read() if upload is not None else None,
                questions_name=upload.name if upload is not None else "",
                assistants=data["assistants"],
                manual=data["manual"],
                retrieval_only=data["retrieval_only"],
                judge_endpoint=data["judge_endpoint"],
                judge_prompt=data["judge_prompt"],
                training_job=data["training_job"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc, rename=_FORM_FIELDS)
        else:
            messages.success(request, f"Evaluation #{run.pk} queued.")
            return redirect("training:evaluation", run_id=run.pk)
    return render(request, "training/eval_launch.html", {"form": form, "job": job})


@login_required
@permission_required("training.view_trainingjob", raise_exception=True)
@require_GET
def evaluation_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(
        EvaluationRun.objects.select_related(
            "snapshot", "manual", "judge_endpoint", "training_job", "created_by"
        ),
        pk=run_id,
    )
    context = {"run": run, "report": evaluation.evaluation_report(run)}
    return render(request, "training/eval_detail.html", context)


def _evaluation_progress(run: EvaluationRun) -> dict:
    """What the report page polls while the run is going, besides the status."""
    return {"done": run.done, "total": run.total}


evaluation_status = job_status_view(
    EvaluationRun, "run_id", permission="training.view_trainingjob", extra=_evaluation_progress
)


def _steer(request: HttpRequest, run_id: int, act, said) -> HttpResponse:
    """As a launcher, ``act(run=..., user=...)`` on the run; flash ``said(result)``, or the
    service's refusal, and go back to the run's page."""
    _require_launcher(request)
    run = get_object_or_404(EvaluationRun, pk=run_id)
    flash_service(request, act, said, run=run, user=request.user)
    return redirect("training:evaluation", run_id=run_id)


@login_required
@require_POST
def evaluation_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    def said(run: EvaluationRun) -> str:
        return "Cancelled." if run.is_finished else "Cancel requested."

    return _steer(request, run_id, evaluation.evaluation_run_cancel, said)


@login_required
@require_POST
def evaluation_baseline(request: HttpRequest, run_id: int) -> HttpResponse:
    """Make the run the baseline of the assistants it evaluated."""

    def said(baselines) -> str:
        names = ", ".join(baseline.assistant.name for baseline in baselines)
        return f"Run #{run_id} is now the baseline of {names}."

    return _steer(request, run_id, evaluation.evaluation_baseline_set, said)


@login_required
@permission_required("training.view_trainingjob", raise_exception=True)
@require_GET
def evaluation_export(request: HttpRequest, run_id: int, fmt: str) -> HttpResponse:
    """The run's answers as CSV (a row per answer) or JSON (summary and items), or its
    summary as CSV (``summary.csv``: per assistant, category and metric, with intervals)."""
    if fmt not in ("csv", "json", "summary.csv"):
        raise Http404(f"No export format {fmt!r}: use csv, json or summary.csv.")
    run = get_object_or_404(EvaluationRun, pk=run_id)
    if fmt == "summary.csv":
        response = HttpResponse(
            evaluation.evaluation_run_summary_csv(run), content_type="text/csv; charset=utf-8"
        )
    elif fmt == "csv":
        response = HttpResponse(
            evaluation.evaluation_run_csv(run), content_type="text/csv; charset=utf-8"
        )
    else:
        body = json.dumps(evaluation.evaluation_run_export(run), indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="evaluation-{run.pk}.{fmt}"'
    return response
