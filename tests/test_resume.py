"""A damaged checkpoint never loses a run: resume from the newest one that loads."""

from __future__ import annotations

import json
from pathlib import Path

from lit_transformer.cli.main import main


def _fit(ablation: Path, data: Path, out: Path, steps: int) -> int:
    argv = ["fit", "--ablation", str(ablation), "--row", "base", "--data.data_root", str(data)]
    argv += ["--out", str(out), "--trainer.max_steps", str(steps), "--no-test"]
    argv += ["--decode.beam", "1"]
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
