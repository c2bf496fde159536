"""Baselines: the evaluation run each assistant is held to, and the gate against it."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from manualqa import roles
from training.evaluation.compare import GateError, GateResult, evaluation_gate
from training.models import EvaluationBaseline, EvaluationRun


@transaction.atomic
def evaluation_baseline_set(
    *, run: EvaluationRun, user, assistants: Iterable | None = None
) -> list[EvaluationBaseline]:
    """Make ``run`` the baseline of ``assistants`` (default: every assistant it evaluated).

    Only a run that succeeded, and only for assistants it answered with, so a gate never
    compares with a half-finished or foreign run. Replaces an assistant's earlier baseline.
    """
    roles.require(user, "training.launch_trainingjob", "Setting baselines needs the Trainer role.")
    if run.status != EvaluationRun.Status.SUCCEEDED:
        raise ValidationError(
            f"Run #{run.pk} {run.get_status_display().lower()}; only a run that succeeded can "
            "be a baseline."
        )
    evaluated = {assistant.pk: assistant for assistant in run.assistants.all()}
    chosen = list(evaluated.values()) if assistants is None else list(assistants)
    if not chosen:
        raise ValidationError(f"Run #{run.pk} evaluated no assistant (retrieval of a manual).")
    foreign = [assistant.name for assistant in chosen if assistant.pk not in evaluated]
    if foreign:
        raise ValidationError(
            f"Run #{run.pk} did not evaluate {', '.join(foreign)}, so it cannot be their baseline."
        )
    return [
        EvaluationBaseline.objects.update_or_create(
            assistant=assistant, defaults={"run": run, "set_by": user}
        )[0]
        for assistant in chosen
    ]


def evaluation_gates(run: EvaluationRun, baseline: EvaluationRun | None = None) -> list[GateResult]:
    """``run`` against ``baseline``, or (None) against its assistants' own baselines.

    ``GateError`` when there is nothing to compare with, naming why."""
    if baseline is not None:
        return [evaluation_gate(run, baseline)]
    held: dict[int, set[int]] = {}
    for assistant_id, run_id in EvaluationBaseline.objects.filter(
        assistant__in=run.assistants.all()
    ).values_list("assistant_id", "run_id"):
        if run_id != run.pk:
            held.setdefault(run_id, set()).add(assistant_id)
    if not held:
        names = ", ".join(a.name for a in run.assistants.all()) or "its subjects"
        raise GateError(f"No baseline is set for {names}: set one, or name a baseline run.")
    return [
        evaluation_gate(run, EvaluationRun.objects.get(pk=run_id), assistant_ids=assistants)
        for run_id, assistants in sorted(held.items())
    ]
