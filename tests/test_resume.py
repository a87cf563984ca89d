"""A damaged checkpoint never loses a run: resume from the newest one that loads; a run
resumed mid-epoch goes on with the batches it would have had."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lit_transformer.cli.main import main


def _fit(ablation: Path, data: Path, out: Path, steps: int, *extra: str) -> int:
    argv = ["fit", "--ablation", str(ablation), "--row", "base", "--data.data_root", str(data)]
    argv += ["--out", str(out), "--trainer.max_steps", str(steps), "--no-test"]
    argv += ["--decode.beam", "1", *extra]
    return main([*argv, "--trainer.val_bleu", "false", "--trainer.val_check_interval", "100"])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_last_checkpoint_resumes_from_an_older_one(
    tmp_path, tiny_ablation, small_data_root, session_cache, monkeypatch, capsys
):
    monkeypatch.setenv("LIT_TRANSFORMER_CACHE", str(session_cache))
    out = tmp_path / "run"
    assert _fit(tiny_ablation, small_data_root, out, 10) == 0
    ckpts = out / "checkpoints"
    assert (ckpts / "step0000010.ckpt").is_file()
    _truncate(ckpts / "last.ckpt")
    capsys.readouterr()
    assert _fit(tiny_ablation, small_data_root, out, 15) == 0
    err = capsys.readouterr().err
    assert "warning: skipped" in err and "last.ckpt" in err
    assert f"resuming from {ckpts / 'step0000010.ckpt'}" in err
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 15 and result["resumed_from"].endswith("step0000010.ckpt")


def test_with_every_checkpoint_corrupt_the_run_starts_fresh(
    tmp_path, tiny_ablation, small_data_root, session_cache, monkeypatch, capsys
):
    monkeypatch.setenv("LIT_TRANSFORMER_CACHE", str(session_cache))
    out = tmp_path / "run"
    assert _fit(tiny_ablation, small_data_root, out, 5) == 0
    for path in (out / "checkpoints").glob("*.ckpt"):
        _truncate(path)
    capsys.readouterr()
    assert _fit(tiny_ablation, small_data_root, out, 5) == 0
    assert "no readable checkpoint: starting fresh" in capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 5 and result["resumed_from"] is None


def _train_losses(out: Path) -> dict[int, float]:
    with open(out / "csv" / "metrics.csv", newline="") as fh:
        return {
            int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(fh) if r["train/loss"]
        }


def test_a_run_resumed_mid_epoch_trains_on_the_batches_it_would_have(
    tmp_path, tiny_ablation, small_data_root, session_cache, monkeypatch
):
    """Stopped at step 7 and resumed from its step-5 checkpoint, a run continues the epoch's
    batch order (not the epoch over again), crosses into the next epoch as the uninterrupted
    run does, and keeps the metrics it logged before the checkpoint: the same losses at every
    step (dropout off, so only the batches could differ)."""
    monkeypatch.setenv("LIT_TRANSFORMER_CACHE", str(session_cache))
    extra = ["--model.dropout", "0", "--trainer.log_every_n_steps", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _fit(tiny_ablation, small_data_root, straight, 25, *extra) == 0
    assert json.loads((straight / "result.json").read_text())["epochs"] >= 1  # crossed one
    assert _fit(tiny_ablation, small_data_root, resumed, 7, *extra) == 0
    (resumed / "checkpoints" / "last.ckpt").unlink()  # the newest left is step 5's
    assert _fit(tiny_ablation, small_data_root, resumed, 25, *extra) == 0
    assert json.loads((resumed / "result.json").read_text())["resumed_from"].endswith(
        "step0000005.ckpt"
    )
    expected, got = _train_losses(straight), _train_losses(resumed)
    assert sorted(got) == sorted(expected) == list(range(25))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-5), step
