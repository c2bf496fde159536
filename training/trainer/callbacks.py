"""Progress, cancellation and results: what a run reports after each step, and returns."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import (
    TrainerCallback,
)
from transformers.integrations import TensorBoardCallback

# --------------------------------------------------------------------------------------------
# Progress, cancellation and results


@dataclass
class ProgressEvent:
    """Where a run stands after an optimizer step (``loss`` set on logging steps) or after an
    evaluation (``eval_loss`` set). ``tokens_per_s`` and ``eta_s`` are measured over this
    process's part of the run, so a resumed run does not count the time it was stopped."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    tokens_per_s: float | None
    eta_s: float | None


class TrainingCancelled(Exception):
    """``should_stop`` asked the run to stop; ``checkpoint`` is where it can resume from.

    ``should_stop`` is asked only after optimizer steps, so even a stop requested while the
    model was loading ends with one step done and a checkpoint to resume from."""

    def __init__(self, message: str, *, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    """What a finished run produced and how fast it went."""

    adapter_dir: Path
    merged_dir: Path
    final_train_loss: float | None
    eval_loss: float | None
    train_tokens: int
    train_seconds: float
    tokens_per_s: float | None
    steps: int
    samples: list[dict[str, str]] = field(default_factory=list)
    device: str = ""
    # False on the other ranks of an ``accelerate launch`` run: they neither merge nor report.
    main_process: bool = True


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class _ProgressReporter(TrainerCallback):
    """Reports a :class:`ProgressEvent` for every optimizer step and evaluation, and stops the
    run (after saving a checkpoint) when ``should_stop()`` says so."""

    def __init__(
        self,
        on_progress: Callable[[ProgressEvent], None] | None,
        should_stop: Callable[[], bool],
        on_log: Callable[[str], None],
    ) -> None:
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.log = on_log
        self.cancelled = False
        self.started = time.monotonic()
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        # Called after a resumed run has loaded its state, so rates count this session only.
        self.started = time.monotonic()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen or 0

    def _event(self, state, *, loss=None, eval_loss=None, learning_rate=None) -> ProgressEvent:
        elapsed = time.monotonic() - self.started
        steps = state.global_step - self.start_step
        tokens = (state.num_input_tokens_seen or 0) - self.start_tokens
        return ProgressEvent(
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=float(state.epoch or 0.0),
            loss=_finite(loss),
            eval_loss=_finite(eval_loss),
            learning_rate=_finite(learning_rate),
            tokens_per_s=tokens / elapsed if tokens > 0 and elapsed > 0 else None,
            eta_s=(state.max_steps - state.global_step) * elapsed / steps if steps > 0 else None,
        )

    def _emit(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def _step_done(self, state, control, event: ProgressEvent) -> None:
        """Report a finished step, then ask whether to stop: a stop requested once step N was
        reported ends the run at step N, with a checkpoint of it."""
        self._emit(event)
        if state.global_step < state.max_steps and self.should_stop():
            control.should_save = True
            control.should_training_stop = True
            self.cancelled = True
            self.log(f"Stop requested at step {state.global_step}: saving a checkpoint.")

    def on_step_end(self, args, state, control, **kwargs):
        # A logging step is reported by on_log, which follows with its loss.
        if not control.should_log:
            self._step_done(state, control, self._event(state))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Runs before the trainer decides whether to save, so a stop asked for here still
        # gets its checkpoint.
        logs = logs or {}
        if "loss" in logs:
            event = self._event(state, loss=logs["loss"], learning_rate=logs.get("learning_rate"))
            parts = [f"step {event.step}/{event.total_steps}"]
            if event.loss is not None:
                parts.append(f"loss {event.loss:.4f}")
            if event.learning_rate is not None:
                parts.append(f"lr {event.learning_rate:.2e}")
            if event.tokens_per_s is not None:
                parts.append(f"{event.tokens_per_s:.0f} tokens/s")
            if event.eta_s is not None:
                parts.append(f"ETA {event.eta_s:.0f}s")
            self.log(", ".join(parts))
            self._step_done(state, control, event)
        if "eval_loss" in logs:
            event = self._event(state, eval_loss=logs["eval_loss"])
            self._emit(event)
            self.log(f"step {event.step}/{event.total_steps}: eval loss {logs['eval_loss']:.4f}")
        return control


class JobTensorBoardCallback(TensorBoardCallback):
    """transformers' TensorBoard logging (every logged value as a scalar: ``train/loss``,
    ``train/learning_rate``, ``eval/loss``...), into one folder of the job's own.

    transformers' default folder is ``runs/<date>_<host>`` under the checkpoints, a new one
    each time a job resumes; here the whole run, resumed or not, is one ``--logdir``. Event
    files are local: nothing is sent anywhere.
    """

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        # Where the callback's writer goes (the attribute TENSORBOARD_LOGGING_DIR sets).
        self.logging_dir = str(log_dir)
