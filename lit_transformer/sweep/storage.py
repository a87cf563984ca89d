"""Optuna storage: SQLite by default, PostgreSQL for many workers and hosts.

Heartbeats mark a dead worker's RUNNING trial FAIL after ``grace_period`` seconds, and
``RetryHeartbeatStaleTrialCallback`` re-enqueues it (WAITING, same row/seed) so that another
worker, or a re-run of the same command, picks it up and resumes from its last checkpoint.

Enqueueing the grid and claiming a WAITING trial happen under one study-wide lock (a
PostgreSQL advisory lock, or an ``flock`` beside the SQLite file), so several workers on
several hosts never enqueue a row × seed twice or start the same trial twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from lit_transformer.config import ConfigError

# Heartbeats and their retry callback are stable in practice but flagged experimental, and
# Optuna warns that heartbeats are meant for Study.optimize: the workers here keep them
# themselves around ask/tell.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")

HEARTBEAT_INTERVAL = 5
STORAGE_ENV = "LIT_TRANSFORMER_OPTUNA_STORAGE"  # the URL travels by environment, never argv
GRACE_PERIOD = 20


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (never print or log a password)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def default_storage(run_dir: Path, study: str) -> str:
    run_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(run_dir / f'{study}.db').resolve()}"


def normalise_url(url: str) -> str:
    # SQLAlchemy 2 + psycopg 3: a bare postgresql:// URL would ask for psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str, max_retry: int = 2) -> RDBStorage:
    url = normalise_url(url)
    kwargs: dict = {}
    if url.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    elif url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        raise ConfigError(f"unsupported storage {redact(url)} (use sqlite:/// or postgresql://)")
    last: Exception | None = None
    for attempt in range(5):
        try:
            return RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry
                ),
                **kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors vary by backend
            last = exc
            # Workers (or hosts) that start together race to create the schema: the loser
            # sees "already exists" / a unique violation, and succeeds once the tables are in.
            text = str(exc).lower()
            if "already exists" not in text and "unique" not in text:
                break
            time.sleep(0.5 * (attempt + 1))
    reason = str(last).splitlines()[0] if str(last) else type(last).__name__
    reason = reason.replace(url, redact(url))
    raise ConfigError(f"cannot open storage {redact(url)}: {redact(reason)}") from None


@contextlib.contextmanager
def study_lock(storage: RDBStorage, study: str) -> Iterator[None]:
    """A lock shared by every worker of ``study`` on this storage."""
    url = storage.url
    if url.startswith("sqlite"):
        path = Path(url.split("sqlite:///", 1)[1] + f".{study}.lock")
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(study.encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def load_or_create_study(storage: RDBStorage, name: str, sampler=None, pruner=None) -> optuna.Study:
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",  # dev perplexity
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
