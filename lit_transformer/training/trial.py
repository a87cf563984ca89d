"""A sweep trial as a function: ``run_trial(trial_dir)`` (the trial contract, ARCHITECTURE.md).

The orchestrator freezes everything a trial runs into ``DIR/trial.json`` (rule *one sampler*:
the trial never asks Optuna for anything) and calls ``run_trial(DIR)`` in a forked process, or
``lit-transformer trial DIR`` where Lightning must re-launch a command per DDP rank. The trial
writes ``DIR/result.json`` (what the orchestrator reads back), or ``DIR/failure.json`` with
the reason when training diverged (the failure protocol: the trial ends FAIL with that reason
and is not retried).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lit_transformer.provenance import is_rank_zero, write_json_atomic

TRIAL_FILE = "trial.json"
FAILURE_FILE = "failure.json"
EXIT_DIVERGED = 3


@dataclass
class TrialSpec:
    """What one trial runs, frozen by the orchestrator before it starts."""

    study: str
    trial_id: int
    number: int
    ablation: str  # the ablation file
    row: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)  # config patch on top of the row
    test: bool = False  # also score the test set
    prune: bool = False  # report dev loss to the study's pruner at each validation
    pruner: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None  # what the study's budget holds equal (its W&B runs say it)


def write_trial(trial_dir: Path, spec: TrialSpec) -> None:
    """``DIR/trial.json``, and the overrides as ``DIR/params.yaml`` for a reader."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dataclasses.asdict(spec), trial_dir / TRIAL_FILE)
    (trial_dir / "params.yaml").write_text(yaml.safe_dump(spec.overrides, sort_keys=True))


def read_trial(trial_dir: Path) -> TrialSpec:
    from lit_transformer.config import ConfigError

    path = Path(trial_dir) / TRIAL_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return TrialSpec(**raw)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not a trial directory (no {TRIAL_FILE})") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a trial file ({exc})") from None


def fit_or_fail(run: Any) -> tuple[int, dict[str, Any] | None]:
    """``run_fit(run)``; a divergence is recorded in ``failure.json`` (rank 0) and returned as
    ``EXIT_DIVERGED``, so that the sweep ends the trial FAIL with the reason and goes on.
    SIGTERM (Lightning stops after the batch with ``SIGTERMException``, a ``SystemExit``
    whose status would be 0) returns ``EXIT_TERMINATED``: the run was stopped, it did not end."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lit_transformer.errors import EXIT_TERMINATED
    from lit_transformer.training.module import DivergenceError
    from lit_transformer.training.run import run_fit

    try:
        return 0, run_fit(run)
    except SIGTERMException:
        print("error: stopped by SIGTERM", file=sys.stderr)
        return EXIT_TERMINATED, None
    except DivergenceError as exc:
        if is_rank_zero():
            run.out_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic({"reason": f"diverged: {exc}"}, run.out_dir / FAILURE_FILE)
        print(f"error: diverged: {exc}", file=sys.stderr)
        return EXIT_DIVERGED, None


def run_trial(trial_dir: str | Path) -> int:
    """Train and score the trial frozen in ``trial_dir``; returns the process's exit code."""
    trial_dir = Path(trial_dir)
    spec = read_trial(trial_dir)
    from lit_transformer.ablation import load_ablation
    from lit_transformer.sweep.pruning import StoragePruningCallback
    from lit_transformer.training.run import RunSpec

    config = load_ablation(spec.ablation).row_config(spec.row, spec.overrides)
    run = RunSpec(
        config=config,
        out_dir=trial_dir,
        seed=spec.seed,
        row=spec.row,
        ablation=spec.ablation,
        group=spec.study,
        test=spec.test,
        callbacks=(StoragePruningCallback(spec),) if spec.prune else (),
        job_type="trial",
        protocol=spec.protocol,
    )
    code, result = fit_or_fail(run)
    if result is not None and is_rank_zero():
        print(summary(result), flush=True)  # the trial's log ends with what it found
    return code


def summary(result: dict[str, Any]) -> str:
    """What a run found, in a few lines (the end of ``fit``'s output and of a trial's log)."""
    lines = [
        f"row {result.get('row') or '-'} seed {result['seed']}: {result['steps']} steps, "
        f"{result['params']:,} params, {result['wall_s']:.0f} s",
        f"dev ppl {result['dev_ppl']:.2f}"
        + (f"  dev BLEU {result['dev_bleu']:.2f}" if result.get("dev_bleu") is not None else ""),
    ]
    if result.get("test_bleu") is not None:
        lines.append(f"test BLEU {result['test_bleu']:.2f} (beam {result['beam']})")
    if result.get("test_bleu_averaged") is not None:
        lines.append(
            f"test BLEU {result['test_bleu_averaged']:.2f} "
            f"(average of last {result['averaged_checkpoints']} checkpoints)"
        )
    if result.get("bleu_signature"):
        lines.append(f"sacreBLEU {result['bleu_signature']}")
    if result.get("dev_bleu_paper") is not None:
        test = result.get("test_bleu_paper")
        dev = f"paper-style BLEU: dev {result['dev_bleu_paper']:.2f}"
        lines.append(dev + (f"  test {test:.2f}" if test is not None else ""))
        lines.append(result["bleu_paper_signature"])  # "paper-style: moses-tok(de, …)…"
    lines.append(f"result: {Path(result['checkpoint']).parent / 'result.json'}")
    return "\n".join(lines)
