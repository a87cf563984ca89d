"""``sweep SPEC``: run (or resume) an Optuna study from a ``sweeps/*.yaml`` spec."""

from __future__ import annotations

import argparse

SUMMARY = "run (or resume) an Optuna study from a sweeps/*.yaml spec"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,3, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return values


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("spec", help="study spec, e.g. sweeps/table3-cpu-steps.yaml")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite file in --run-dir)")
    p.add_argument("--study-name", help="study name (default: the spec's)")
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes on this host (default: for an equal-steps study on a CPU machine "
        "of up to 4 cores one per core, one thread each; else 1 with every core)",
    )
    p.add_argument("--devices", type=int, help="devices per trial (DDP when > 1)")
    p.add_argument(
        "--seeds",
        type=_int_list,
        help="comma-separated seeds instead of the spec's (e.g. 1 or 1,2); re-run with more later",
    )
    p.add_argument("--run-dir", default="runs/sweeps", help="trial directories and SQLite file")
    p.add_argument("--wandb", choices=["online", "offline", "disabled"], default="offline")
    p.add_argument("--status", action="store_true", help="print the rows x seeds table and exit")
    p.add_argument(
        "--plan",
        action="store_true",
        help="print each trial's steps, tokens and device-hours and exit (runs nothing)",
    )
    p.add_argument(
        "--tokens-per-s",
        type=float,
        metavar="N",
        help="with --plan: target tokens/s of one device, for the hours",
    )
    p.add_argument(
        "--bench",
        metavar="FILE",
        help="with --plan: the tokens/s from a gpu-check --out FILE or bench train --json result",
    )
    p.add_argument("--threads", type=int, help="threads per trial (default: cores / workers)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # a worker process


def run(args: argparse.Namespace) -> int:
    from lit_transformer.sweep.start import SweepOptions, run_sweep

    return run_sweep(SweepOptions(**{k: v for k, v in vars(args).items() if k != "command"}))
