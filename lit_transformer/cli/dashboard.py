"""``dashboard``: optuna-dashboard on a study's storage, bound to this machine only.

Every trial shows its row and seed (its parameters), its state and dev perplexity (the
objective), and dev BLEU, steps, wall time, git commit and hashes (user attributes). Bound to
127.0.0.1: the dashboard can change a study (notes, trial states), so it is not served to the
network; reach it from elsewhere through an SSH tunnel (README, "Sweeps")."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SUMMARY = "optuna-dashboard on a study's storage, at http://127.0.0.1:PORT"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument(
        "--storage", help="Optuna storage URL (default: $LIT_TRANSFORMER_OPTUNA_STORAGE)"
    )
    p.add_argument("--port", type=int, default=8080)


def run(args: argparse.Namespace) -> int:
    from lit_transformer.config import ConfigError
    from lit_transformer.sweep.storage import STORAGE_ENV, open_storage, redact

    url = args.storage or os.environ.get(STORAGE_ENV)
    if not url:
        raise ConfigError(f"give --storage URL (or set {STORAGE_ENV}), e.g. sqlite:///study.db")
    if url.startswith("sqlite:///") and not Path(url.split("sqlite:///", 1)[1]).is_file():
        raise ConfigError(f"{url}: no such SQLite file")  # SQLite would make an empty one
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535, got {args.port}")
    import optuna_dashboard

    storage = open_storage(url)
    print(f"dashboard of {redact(url)}: http://127.0.0.1:{args.port}/dashboard", flush=True)
    print("(Ctrl-C stops it)", file=sys.stderr, flush=True)
    optuna_dashboard.run_server(storage, host="127.0.0.1", port=args.port)
    return 0
