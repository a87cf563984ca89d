"""``sync STUDY``: upload a study's offline W&B runs with ``wandb sync``, when there is a key.

Trials log offline by default (rule *rank-zero logging*), so nothing can be looked at on
wandb.ai until their runs are uploaded. Without an API key, or with the network down, this
says so in one line and leaves every run where it is: ``wandb sync`` marks each run it has
uploaded (``run-ID.wandb.synced``), so a later call uploads only the rest."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

SUMMARY = "upload a study's offline W&B runs (wandb sync), or say in one line why not"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("study", help="the study's name (its trials are under --run-dir/STUDY)")
    p.add_argument("--run-dir", default="runs/sweeps", help="the sweep's --run-dir")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many s")


def offline_runs(root: Path) -> list[Path]:
    """Offline run directories under ``root`` not uploaded yet."""
    return [
        run
        for run in sorted(root.rglob("offline-run-*"))
        if any(run.glob("run-*.wandb")) and not any(run.glob("run-*.wandb.synced"))
    ]


def run(args: argparse.Namespace) -> int:
    from lit_transformer.config import ConfigError
    from lit_transformer.training.loggers import wandb_api_key_available

    root = Path(args.run_dir) / args.study
    if not root.is_dir():
        raise ConfigError(f"{root}: no such study directory (see --run-dir)")
    runs = offline_runs(root)
    if not runs:
        print(f"{args.study}: every W&B run under {root} is uploaded already (or none was made)")
        return 0
    if not wandb_api_key_available():
        raise ConfigError(
            f"no W&B API key (WANDB_API_KEY or `wandb login`): nothing uploaded, the "
            f"{len(runs)} offline runs stay under {root}; run this again once logged in"
        )
    wandb_cli = Path(sys.executable).with_name("wandb")
    cmd = [str(wandb_cli), "sync", *map(str, runs)]
    # Its own process group: on a timeout, wandb's service processes go with it.
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=args.timeout)
        failed = proc.returncode != 0
        why = out.strip().splitlines()[-1:] if failed else []
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        failed, why = True, [f"no answer in {args.timeout:.0f} s"]
    left = offline_runs(root)
    if failed or left:
        reason = why[0] if why else f"{len(left)} runs not uploaded"
        print(
            f"error: wandb sync failed ({reason[:200]}): nothing is lost, {len(left)} of "
            f"{len(runs)} runs stay offline under {root}; run this again later",
            file=sys.stderr,
        )
        return 1
    print(f"{args.study}: uploaded {len(runs)} W&B runs")
    return 0
