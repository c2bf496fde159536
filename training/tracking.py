"""Experiment trackers a training run logs to: which exist, which are installed and configured
here, and what a run set to ``report_to="auto"`` logs to.

Plain Python, like :mod:`training.presets` (which checks a recipe's ``report_to`` against
:data:`TRACKERS`): no Django, no torch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Mapping
from typing import Final

__all__ = [
    "TENSORBOARD_DIR_NAME",
    "TRACKERS",
    "TRACKER_LABELS",
    "TRACKING_VARIABLES",
    "installed_trackers",
    "resolve_report_to",
    "tracker_problems",
]

# Experiment trackers a run can log to, by their transformers ``report_to`` names: TensorBoard
# event files in the job's own folder (offline), Weights & Biases and MLflow where installed
# and configured (:func:`tracker_problems`).
TRACKERS: Final = ("tensorboard", "wandb", "mlflow")
TRACKER_LABELS: Final = {"tensorboard": "TensorBoard", "wandb": "W&B", "mlflow": "MLflow"}
# The environment variables that configure them: transformers' callbacks read these in the
# worker, and the settings read the same ones, so a launch is checked against them.
TRACKING_VARIABLES: Final = ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI")
#: The folder, inside a job's output folder, that its TensorBoard event files go to.
TENSORBOARD_DIR_NAME: Final = "tensorboard"


def installed_trackers() -> frozenset[str]:
    """The trackers whose package this process could import (looked up, not imported)."""
    return frozenset(name for name in TRACKERS if importlib.util.find_spec(name) is not None)


def _named_trackers(report_to: str | Collection[str]) -> tuple[str, ...]:
    if report_to in ("auto", "none"):
        return ()
    return (report_to,) if isinstance(report_to, str) else tuple(report_to)


def _tracker_problem(name: str, *, environ: Mapping[str, str], installed: Collection[str]) -> str:
    label = f"{TRACKER_LABELS[name]} ({name})"
    if name not in installed:
        return f"{label} is not installed here: pip install {name}, or leave it out of report_to."
    if name == "wandb":
        if environ.get("WANDB_MODE") == "disabled":
            return f"{label} is turned off here (WANDB_MODE=disabled)."
        if not (environ.get("WANDB_API_KEY") or environ.get("WANDB_MODE") == "offline"):
            return (
                f"{label} is installed but not configured: set WANDB_API_KEY, or "
                "WANDB_MODE=offline to keep its logs on this machine."
            )
    if name == "mlflow" and not environ.get("MLFLOW_TRACKING_URI"):
        return (
            f"{label} is installed but not configured: set MLFLOW_TRACKING_URI (a file:// "
            "folder or a tracking server)."
        )
    return ""


def tracker_problems(
    report_to: str | Collection[str],
    *,
    environ: Mapping[str, str],
    installed: Collection[str] | None = None,
) -> list[str]:
    """Why trackers that ``report_to`` names cannot log here, one sentence naming each; empty
    when all can. ``"auto"`` and ``"none"`` name none, so they never fail; unknown names are
    :func:`validate_config`'s to refuse.

    ``environ``: the tracking variables (:data:`TRACKING_VARIABLES`) where the run is checked.
    ``installed``: the trackers importable there (default: :func:`installed_trackers`).
    """
    installed = installed_trackers() if installed is None else installed
    problems = [
        _tracker_problem(name, environ=environ, installed=installed)
        for name in _named_trackers(report_to)
        if name in TRACKERS
    ]
    return [problem for problem in problems if problem]


def resolve_report_to(
    report_to: str | Collection[str],
    *,
    environ: Mapping[str, str],
    installed: Collection[str] | None = None,
) -> tuple[str, ...]:
    """The trackers a run logs to: for ``"auto"`` every tracker installed and configured (so
    TensorBoard wherever its package is, W&B and MLflow only once set up), none for
    ``"none"``, else the ones named (which :func:`tracker_problems` checks)."""
    if report_to != "auto":
        return _named_trackers(report_to)
    installed = installed_trackers() if installed is None else installed
    return tuple(
        name
        for name in TRACKERS
        if not _tracker_problem(name, environ=environ, installed=installed)
    )
