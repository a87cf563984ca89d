"""``sweep SPEC --plan``: trials, steps, tokens and hours, composed as the trials compose them,
with nothing stored, read or trained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lit_transformer.cli.main import main
from lit_transformer.config import ConfigError
from lit_transformer.sweep.plan import bench_rate, format_plan, plan_study
from lit_transformer.sweep.spec import load_spec
from lit_transformer.sweep.start import SweepOptions, load_for

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "sweeps" / "table3-paper.yaml"

ABLATION = """\
defaults:
  model: {n_layers: 1, d_model: 32, d_ff: 64, heads: 2, d_k: 16, d_v: 16}
  data: {corpus: multi30k, vocab_size: 400, max_tokens: 1000}
  trainer: {max_steps: 50, accumulate_grad_batches: 2}
rows:
  - id: base
  - id: wide
    data: {max_tokens: 3000}
"""


def write_spec(tmp_path: Path, body: str) -> Path:
    (tmp_path / "ablation.yaml").write_text(ABLATION)
    path = tmp_path / "spec.yaml"
    path.write_text("ablation: ablation.yaml\n" + body)
    return path


def test_paper_study_plan_is_rows_by_seeds_of_25k_token_steps():
    spec = load_spec(PAPER)
    plan = plan_study(spec, tokens_per_s=50_000)
    assert len(plan.trials) == len(spec.rows) * len(spec.seeds) == 20
    assert {t.tokens_per_step for t in plan.trials} == {8 * 3125 * 1}
    steps = {t.row: t.steps(plan.rate) for t in plan.trials}
    assert steps["big"] == 300_000
    assert {s for row, s in steps.items() if row != "big"} == {100_000}
    base = next(t for t in plan.trials if t.row == "base")
    # 100k steps × 25k tokens at 50k tokens/s per device: device-hours, then over 8 devices.
    assert base.device_hours(plan.rate) == pytest.approx(100_000 * 25_000 / 50_000 / 3600)
    assert base.wall_hours(plan.rate) == pytest.approx(100_000 * 25_000 / 50_000 / 3600 / 8)
    total = sum(t.device_hours(plan.rate) for t in plan.trials)
    assert total == pytest.approx((19 * 100_000 + 300_000) * 25_000 / 50_000 / 3600)
    assert f"{total:,.2f}" in format_plan(plan)


def test_command_line_devices_and_seeds_change_the_plan():
    spec = load_for(SweepOptions(spec=str(PAPER), devices=4, seeds=[1, 2]))
    plan = plan_study(spec)
    assert len(plan.trials) == 40 and {t.seed for t in plan.trials} == {1, 2}
    assert {t.tokens_per_step for t in plan.trials} == {4 * 3125}
    text = format_plan(plan)
    assert "hours need tokens/s per device" in text
    assert "lit-transformer bench train --d-model 512" in text
    assert plan.trials[0].device_hours(None) is None


def test_step_and_time_budgets_of_a_composed_spec(tmp_path):
    path = write_spec(tmp_path, "seeds: [0, 1]\nbudget: {steps: 10, row_scale: {wide: 2}}\n")
    plan = plan_study(load_spec(path), tokens_per_s=100.0)
    assert [(t.row, t.seed) for t in plan.trials] == [
        ("base", 0),
        ("wide", 0),
        ("base", 1),
        ("wide", 1),
    ]
    wide = plan.trials[1]
    assert (wide.steps(100.0), wide.tokens_per_step) == (20, 3000 * 2)
    assert wide.device_hours(100.0) == pytest.approx(20 * 6000 / 100 / 3600)

    path = write_spec(tmp_path, "budget: {minutes: 6}\ndevices: 2\n")
    base = plan_study(load_spec(path)).trials[0]
    assert base.steps(None) is None and base.wall_hours(None) == pytest.approx(0.1)
    assert base.device_hours(None) == pytest.approx(0.2)
    # 6 min of 2 devices at 100 tokens/s each, in steps of 2 × 1000 × 2 tokens.
    assert base.steps(100.0) == pytest.approx(6 * 60 * 100 * 2 / 4000)


def test_hpo_plan_has_n_trials_with_seeds_in_turn(tmp_path):
    path = write_spec(
        tmp_path,
        "kind: hpo\nrow: wide\nseeds: [3, 4]\nn_trials: 5\n"
        "search_space:\n  data.max_tokens: {type: int, low: 500, high: 5000}\n",
    )
    plan = plan_study(load_spec(path))
    assert [t.seed for t in plan.trials] == [3, 4, 3, 4, 3]
    assert {t.row for t in plan.trials} == {"wide"}
    assert "samples data.max_tokens" in format_plan(plan)


def test_bench_files_give_tokens_per_s_per_device(tmp_path):
    gpu = tmp_path / "gpu.json"
    speed = {"speed": {"tgt_tokens_per_s": 4e5}, "speed_compiled": {"tgt_tokens_per_s": 5e5}}
    gpu.write_text(json.dumps({"device": "NVIDIA H100", **speed}))
    assert bench_rate(gpu)[0] == 4e5 and "H100" in bench_rate(gpu)[1]
    assert bench_rate(gpu, compiled=True)[0] == 5e5
    cpu = tmp_path / "bench.json"
    cpu.write_text(json.dumps({"cpu": "x", "ours": {"tgt_tokens_per_s": 3000.0}}))
    assert bench_rate(cpu)[0] == 3000.0
    for text, message in (
        ("{", "not the JSON of"),
        ('{"ours": {}}', "no tgt_tokens_per_s"),
        ('{"tgt_tokens_per_s": -1}', "must be a positive number"),
    ):
        cpu.write_text(text)
        with pytest.raises(ConfigError, match=message):
            bench_rate(cpu)
    with pytest.raises(ConfigError, match="cannot read"):
        bench_rate(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tokens-per-s", "0"], "--tokens-per-s must be a positive number"),
        (["--tokens-per-s", "-5"], "--tokens-per-s must be a positive number"),
        (["--bench", "/nonexistent/bench.json"], "cannot read the bench file"),
        (["--tokens-per-s", "5", "--bench", "x.json"], "not both"),
    ],
)
def test_bad_plan_input_is_one_line(capsys, argv, message):
    assert main(["sweep", str(PAPER), "--plan", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_tokens_per_s_without_plan_is_one_line(capsys):
    assert main(["sweep", str(PAPER), "--tokens-per-s", "5"]) == 2
    assert "go with --plan" in capsys.readouterr().err


def test_plan_command_prints_the_table_and_creates_nothing(tmp_path):
    script = (
        "import sys\n"
        "from lit_transformer.cli.main import main\n"
        f"code = main(['sweep', {str(PAPER)!r}, '--plan', '--tokens-per-s', '50000'])\n"
        "print('imported torch:', 'torch' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("plan of study table3-paper (grid, equal steps): 20 row(s)")
    header = next(line for line in lines if line.startswith("#"))
    assert header.split() == [
        "#", "row", "seed", "devices", "steps", "tokens/step", "tokens", "device-h", "wall-h"
    ]  # fmt: skip
    big = next(line for line in lines if " big " in line).split()
    assert big[1:7] == ["big", "1", "8", "300,000", "25,000", "7,500,000,000"]
    assert any(line.split()[:1] == ["total"] and "305.56" in line for line in lines)
    assert "imported torch: False" in out.stdout
    assert list(tmp_path.iterdir()) == []  # no storage, run directory or cache
