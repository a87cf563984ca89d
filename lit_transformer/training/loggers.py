"""Loggers: CSV always (nothing depends on W&B being reachable), W&B when possible (rule
*rank-zero logging*, ARCHITECTURE.md).

W&B logs from rank 0 only (Lightning's loggers do that), group = study, name = row/seed.
With no API key an ``online`` request falls back to offline with one warning; offline never
touches the network, so a run never hangs on it.
"""

from __future__ import annotations

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
