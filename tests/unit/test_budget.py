"""The training-time budget: validation inside fit does not use it (Lightning's max_time does)."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_transformer.training.budget import TrainingTimeBudget

STEP_S, VAL_S, BUDGET_S = 0.02, 0.4, 1.2


class SlowValidation(L.LightningModule):
    """Each training step takes STEP_S, each validation VAL_S."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        time.sleep(STEP_S)
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        time.sleep(VAL_S)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(budget_counts_validation: bool) -> tuple[int, float, TrainingTimeBudget | None]:
    data = DataLoader(TensorDataset(torch.randn(10_000, 2)), batch_size=1)
    val = DataLoader(TensorDataset(torch.randn(1, 2)), batch_size=1)
    timer = None if budget_counts_validation else TrainingTimeBudget(BUDGET_S / 60)
    trainer = L.Trainer(
        max_time={"seconds": BUDGET_S} if budget_counts_validation else None,
        callbacks=[timer] if timer else [],
        val_check_interval=10,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    t = time.monotonic()
    trainer.fit(SlowValidation(), data, val)
    return trainer.global_step, time.monotonic() - t, timer


def test_validation_does_not_use_the_training_budget():
    wall_steps, _, _ = fit(budget_counts_validation=True)
    steps, seconds, timer = fit(budget_counts_validation=False)
    # Wall budget: 10 steps (0.2 s) then a 0.4 s validation, so about 20 steps in 1.2 s.
    # Training budget: 1.2 s of steps alone, about 60 steps, plus 5 validations on top.
    assert wall_steps <= 30
    assert steps >= 2 * wall_steps
    assert timer.validation_s >= (steps // 10) * VAL_S
    assert BUDGET_S <= timer.time_elapsed() < BUDGET_S + 0.5
    assert seconds >= BUDGET_S + timer.validation_s


def test_fit_config_selects_the_budget(tmp_path):
    from lit_transformer.cli.options import parse_overrides
    from lit_transformer.config import ConfigError, RunConfig
    from lit_transformer.training.run import RunSpec, build_trainer

    def trainer_for(*overrides: str) -> L.Trainer:
        cfg = RunConfig.from_dict(parse_overrides(["--trainer.max_minutes", "2", *overrides]))
        return build_trainer(RunSpec(cfg, tmp_path), False, [])

    default = [c for c in trainer_for().callbacks if isinstance(c, L.pytorch.callbacks.Timer)]
    assert len(default) == 1 and not isinstance(default[0], TrainingTimeBudget)
    off = trainer_for("--trainer.budget_counts_validation", "false").callbacks
    budget = [c for c in off if isinstance(c, L.pytorch.callbacks.Timer)]
    assert len(budget) == 1 and isinstance(budget[0], TrainingTimeBudget)
    assert budget[0]._duration == 120.0
    with pytest.raises(ConfigError, match="budget_counts_validation must be true or false"):
        trainer_for("--trainer.budget_counts_validation", "sometimes")
