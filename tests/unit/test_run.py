"""One run's pieces that need no data: the periodic checkpoints its config asks for."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from lit_transformer.ablation import load_ablation
from lit_transformer.config import ConfigError, RunConfig
from lit_transformer.training.run import checkpointing

PAPER = Path(__file__).resolve().parents[2] / "ablations" / "table3.yaml"


def test_checkpoint_every_minutes_reaches_the_callback(tmp_path):
    """The paper's ablation file: a checkpoint every 10 minutes, the last 5 (big: 20) kept."""
    ablation = load_ablation(PAPER)
    callback = checkpointing(ablation.row_config("base").trainer, tmp_path)
    assert callback._train_time_interval == timedelta(minutes=10)
    assert callback._every_n_train_steps == 0  # time alone triggers it
    assert (callback.save_top_k, callback.save_last) == (5, True)
    big = checkpointing(ablation.row_config("big").trainer, tmp_path)
    assert (big._train_time_interval, big.save_top_k) == (timedelta(minutes=10), 20)


def test_step_checkpoints_without_minutes(tmp_path):
    tr = RunConfig.from_dict({"trainer": {"checkpoint_every_n_steps": 250}}).trainer
    callback = checkpointing(tr, tmp_path)
    assert callback._train_time_interval is None and callback._every_n_train_steps == 250


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"checkpoint_every_minutes": 0}, "must be a positive number, got 0"),
        ({"checkpoint_every_minutes": "10"}, "must be a positive number, got '10'"),
        (
            {"checkpoint_every_minutes": 10, "checkpoint_every_n_steps": 500},
            "exclude each other",
        ),
    ],
)
def test_bad_checkpoint_minutes_are_one_line(trainer, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"trainer": trainer})
