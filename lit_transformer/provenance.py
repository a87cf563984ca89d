"""What a run records about itself (rule *recorded provenance*, ARCHITECTURE.md): the code's
commit, its rank, and files written whole or not at all. Light on purpose (no torch): the
sweep orchestrator and the trial both use it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when it has uncommitted changes outside
    ``reports/`` (a committed study file changes while its sweep runs: that is not the code)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        status = ("status", "--porcelain", "--untracked-files=no", "--", ":(top,exclude)reports")
        dirty = git(*status).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def write_text_atomic(text: str, path: Path) -> None:
    """``path`` holds the old text or the new one, never half of either; concurrent writers
    (ranks, workers) each write their own temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; keep what a plain write makes
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(tmp: Path, final: Path) -> None:
    """Rename a finished temp file or directory into place. If a concurrent process got there
    first, its copy (built from the same inputs) stays and ours is removed."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def write_json_atomic(obj: Any, path: Path) -> None:
    """``path`` holds the old JSON or the new one, never half of either."""
    write_text_atomic(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def is_rank_zero() -> bool:
    """Rank 0 of the whole job, before and after the process group exists: the one process
    that prints and writes results (rule *rank-zero logging*).

    ``RANK`` where a launcher set it (torchrun; Lightning's own ranks once started), else
    ``SLURM_PROCID`` under ``srun`` (Lightning's ``SLURMEnvironment``, which ignores a job
    named ``bash`` or ``interactive``), else node and local rank as Lightning's own launcher
    sets them on each host (``NODE_RANK``, ``LOCAL_RANK``)."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    if "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        return int(env.get("SLURM_PROCID", "0")) == 0
    return int(env.get("NODE_RANK", "0")) == 0 and int(env.get("LOCAL_RANK", "0")) == 0
