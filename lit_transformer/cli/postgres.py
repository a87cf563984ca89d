"""``postgres start|stop``: a local PostgreSQL server for sweep storage (many workers)."""

from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY = "start/stop a local PostgreSQL for sweep storage"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("action", choices=["start", "stop"])
    p.add_argument("--dir", default="runs/postgres")
    p.add_argument("--port", type=int, default=5433)
    p.add_argument("--db", default="optuna")


def run(args: argparse.Namespace) -> int:
    from lit_transformer.sweep import postgres

    if args.action == "start":
        print(postgres.start(Path(args.dir), args.port, args.db))
    else:
        postgres.stop(Path(args.dir))
    return 0
