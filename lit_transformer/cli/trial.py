"""``trial DIR``: run one sweep trial frozen in ``DIR/trial.json`` (what a DDP trial's ranks
run; a single-device trial is forked and calls the same function, ``run_trial``)."""

from __future__ import annotations

import argparse

SUMMARY = "run one frozen sweep trial from its directory (as the sweep does)"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("dir", help="the trial's directory (holds trial.json)")


def run(args: argparse.Namespace) -> int:
    from lit_transformer.training.trial import run_trial

    return run_trial(args.dir)
