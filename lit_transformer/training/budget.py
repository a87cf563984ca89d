"""A time budget that counts training only.

Lightning's ``max_time`` is wall time since training started, periodic validation included.
In a time-bound sweep that makes step counts depend on how long each row's validation takes:
in the committed CPU study, base trained 382 steps and D-drop0.0, the same architecture,
439. With ``trainer.budget_counts_validation: false``, fit stops after ``max_minutes`` of
training steps instead, and the validations inside fit come on top.
"""

from __future__ import annotations

import time
from datetime import timedelta

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import RunningStage, TrainerFn


class TrainingTimeBudget(Timer):
    """``Timer`` whose training clock stops while fit validates.

    The elapsed training time it saves in checkpoints is net of validation too, so a resumed
    run continues the same budget."""

    def __init__(self, minutes: float) -> None:
        super().__init__(duration=timedelta(minutes=minutes), interval="step")
        self._validating_since: float | None = None
        self.validation_s = 0.0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        if trainer.state.fn == TrainerFn.FITTING:
            self._validating_since = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._validating_since is not None:
            self.validation_s += time.monotonic() - self._validating_since
            self._validating_since = None

    def time_elapsed(self, stage: str = RunningStage.TRAINING) -> float:
        elapsed = super().time_elapsed(stage)
        if stage == RunningStage.TRAINING:
            elapsed -= self.validation_s
        return elapsed
