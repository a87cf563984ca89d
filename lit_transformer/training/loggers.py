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
import io
import netrc
import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger

from lit_transformer.provenance import is_rank_zero, write_text_atomic


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
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=sorted(fields), restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(text.getvalue(), path)


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


def run_config(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """A W&B run's config: the keys a runs table groups and filters by at the top (``row``,
    ``seed``, ``study``, ``group``, ``protocol``, ``precision``, ``params``, hashes), then one
    nested section per concern (``model``, ``optim``, ``data``, ``trainer``, ``decode``), which
    W&B shows as ``model.heads`` and so on."""
    return {**{k: v for k, v in meta.items() if v is not None}, **config}


def wandb_run_id(out_dir: Path) -> str:
    """The trial's one W&B run id, kept in ``DIR/wandb/run_id``: a resumed trial logs to the
    same run (``resume="allow"``), which ``wandb sync`` joins into one."""
    path = out_dir / "wandb" / "run_id"
    if path.is_file():
        return path.read_text().strip()
    import secrets

    run_id = secrets.token_hex(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def build_loggers(
    out_dir: Path,
    mode: str,
    project: str,
    name: str,
    group: str | None,
    config: dict[str, Any],
    job_type: str = "train",
    tags: list[str] | None = None,
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
                tags=tags or None,
                save_dir=str(out_dir),
                offline=mode == "offline",
                config=config,
                id=wandb_run_id(out_dir) if is_rank_zero() else None,
                resume="allow",
            )
        )
    return loggers


def wandb_loggers(loggers: list[Logger]) -> list[Any]:
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def define_metrics(loggers: list[Logger]) -> None:
    """The summary keeps the best dev PPL (min) and BLEU (max), not the last values logged;
    every curve has the optimizer step as its x-axis (Lightning's ``trainer/global_step``)."""
    for lg in wandb_loggers(loggers):
        run = lg.experiment
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        run.define_metric("val/ppl", summary="min")
        run.define_metric("val/loss", summary="min")
        run.define_metric("val/bleu", summary="max")


FINAL_KEYS = (
    "dev_ppl",
    "dev_bleu",
    "dev_loss",
    "test_bleu",
    "test_ppl",
    "steps",
    "params",
    "dev_bleu_paper",  # with decode.paper_bleu only
    "test_bleu_paper",
)


def finish_wandb(loggers: list[Logger], result: dict[str, Any]) -> None:
    """The run's final figures (``final/dev_bleu`` … with the decoding that made them) into
    its summary, then close the run, so that the next run in this process starts clean, and
    wait (at most 30 s) until its transaction log is written out, so that whatever reads the
    run once ``fit`` has returned (``wandb sync``, a copy, a test) finds it whole."""
    import wandb

    from lit_transformer.training.wandb_file import wait_until_written

    for lg in wandb_loggers(loggers):
        final = {f"final/{k}": result[k] for k in FINAL_KEYS if result.get(k) is not None}
        final["final/beam"], final["final/alpha"] = result.get("beam"), result.get("alpha")
        lg.experiment.summary.update(final)
    if wandb.run is not None:
        log = Path(wandb.run.settings.sync_file)
        written = log.is_file()  # none in disabled mode: nothing to wait for
        wandb.finish()
        if written:
            wait_until_written(log)
