"""The trial contract's file: what the orchestrator freezes is what ``run_trial`` reads."""

from __future__ import annotations

import json

import pytest
import yaml

from lit_transformer.cli.main import main
from lit_transformer.config import ConfigError
from lit_transformer.training.trial import TrialSpec, read_trial, write_trial


def test_a_frozen_trial_reads_back_whole(tmp_path):
    spec = TrialSpec(
        study="s",
        trial_id=7,
        number=3,
        ablation="ablations/table3-cpu-small.yaml",
        row="A-h1",
        seed=2,
        overrides={"trainer": {"max_steps": 3000, "precision": "32"}, "decode": {"beam": 4}},
        test=False,
        prune=True,
        pruner={"name": "median"},
    )
    write_trial(tmp_path / "t", spec)
    assert read_trial(tmp_path / "t") == spec
    assert yaml.safe_load((tmp_path / "t" / "params.yaml").read_text()) == spec.overrides


def test_a_directory_without_a_trial_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="not a trial directory"):
        read_trial(tmp_path)
    (tmp_path / "trial.json").write_text(json.dumps({"study": "s"}))
    assert main(["trial", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a trial file" in err and len(err.splitlines()) == 1
