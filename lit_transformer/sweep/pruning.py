"""Pruning for HPO trials, through the study's storage.

Rank 0 of the trial process reports the dev loss at every validation to the trial in the
storage and asks the study's pruner; the decision is broadcast to every rank, so all ranks stop
together. The trial process never samples: its parameters came frozen from the orchestrator.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import lightning as L
import optuna

from lit_transformer.sweep.samplers import build_pruner
from lit_transformer.sweep.storage import STORAGE_ENV, open_storage

if TYPE_CHECKING:
    from lit_transformer.training.trial import TrialSpec


class StoragePruningCallback(L.Callback):
    def __init__(self, trial: TrialSpec) -> None:
        self.study_name = trial.study
        self.trial_id = int(trial.trial_id)
        self.pruner_cfg = dict(trial.pruner or {})
        self.enabled = bool(trial.prune)
        self._trial: optuna.Trial | None = None

    def _get_trial(self) -> optuna.Trial:
        if self._trial is None:
            url = os.environ[STORAGE_ENV]
            study = optuna.load_study(
                study_name=self.study_name,
                storage=open_storage(url),
                pruner=build_pruner(self.pruner_cfg),
            )
            self._trial = optuna.Trial(study, self.trial_id)
        return self._trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get("val/loss")
            if value is not None:
                trial = self._get_trial()
                trial.report(float(value), step=trainer.global_step)
                prune = trial.should_prune()
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            trainer.should_stop = True
            trainer.pruned = True
