"""``average``: the mean of the last K checkpoints' weights, as the paper's models use (§6.1)."""

from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY = "average the last K checkpoints"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("checkpoints", nargs="+", help="checkpoint files, or one directory")
    p.add_argument("--last", type=int, help="use only the last K (by step)")
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    from lit_transformer.training.average import (
        CheckpointError,
        average_checkpoints,
        find_checkpoints,
        save_atomic,
    )

    paths = [Path(p) for p in args.checkpoints]
    if len(paths) == 1 and paths[0].is_dir():
        paths = find_checkpoints(paths[0])
        if not paths:
            raise CheckpointError(f"{args.checkpoints[0]}: no checkpoints found")
    if args.last:
        paths = paths[-args.last :]
    save_atomic(average_checkpoints(paths), Path(args.out))
    print(f"averaged {len(paths)} checkpoints -> {args.out}")
    return 0
