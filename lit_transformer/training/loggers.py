"""Loggers: CSV always (nothing depends on W&B being reachable), W&B when possible (rule
*rank-zero logging*, ARCHITECTURE.md).

W&B logs from rank 0 only (Lightning's loggers do that), group = study, name = row/seed.

A resumed run keeps the curve it had: Lightning's CSV logger deletes ``metrics.csv`` when it
starts, so the rows logged before the checkpoint's step are set aside first
(``metrics.earlier.csv``) and joined back in front of the new ones after ``fit``.
With no API key an ``online`` request falls back to offline with one warning; offline never
touches the network, so a run never hangs on it.
"""

from __future__ import annotations

import csv
import netrc
import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger


def wandb_api_key_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def resolve_wandb_mode(requested: str) -> str:
    """``online`` | ``offline`` | ``disabled``; ``WANDB_MODE`` in the environment wins."""
    mode = os.environ.get("WANDB_MODE", requested)
    if mode == "dryrun":
        mode = "offline"
    if mode == "online" and not wandb_api_key_available():
        warnings.warn(
            "W&B: no API key (WANDB_API_KEY or `wandb login`); logging offline instead. "
            "Upload later with `wandb sync`.",
            stacklevel=2,
        )
        mode = "offline"
    return mode


EARLIER = "metrics.earlier.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(rows: list[dict[str, str]], path: Path) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted(fields), restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def set_aside_metrics(csv_dir: Path, before_step: int) -> None:
    """Before a run resumed from step ``before_step`` starts logging: keep every row logged
    before that step (by the runs before it, joined or not) in ``metrics.earlier.csv``."""
    current = csv_dir / "metrics.csv"
    rows = _rows(csv_dir / EARLIER) + _rows(current)
    kept = [r for r in rows if r.get("step", "") != "" and int(r["step"]) < before_step]
    if rows:
        _write_rows(kept, csv_dir / EARLIER)
    current.unlink(missing_ok=True)


def join_metrics(csv_dir: Path) -> None:
    """After ``fit``: ``metrics.csv`` = the rows set aside, then this run's."""
    earlier = csv_dir / EARLIER
    if earlier.is_file():
        _write_rows(_rows(earlier) + _rows(csv_dir / "metrics.csv"), csv_dir / "metrics.csv")
        earlier.unlink()


def build_loggers(
    out_dir: Path,
    mode: str,
    project: str,
    name: str,
    group: str | None,
    config: dict[str, Any],
    job_type: str = "train",
) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=str(out_dir), name="csv", version="")]
    mode = resolve_wandb_mode(mode)
    if mode != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(
            WandbLogger(
                project=project,
                name=name,
                group=group,
                job_type=job_type,
                save_dir=str(out_dir),
                offline=mode == "offline",
                config=config,
            )
        )
    return loggers
