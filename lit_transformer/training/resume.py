"""Which checkpoint a re-run resumes from: the newest one that loads.

A run killed while writing ``last.ckpt`` (a full disk, an interrupted copy to shared storage,
a session ended mid-save) leaves a truncated file that ``torch.load`` rejects. Resuming from it
would fail the retry too, so candidates are tried newest first: ``last.ckpt``, then the
periodic ``stepNNNNNNN.ckpt`` by step. Each one skipped is reported in one line; with none
readable the run starts from scratch.

Under SLURM, Lightning's auto-requeue saves ``DIR/hpc_ckpt_N.ckpt`` when the job is signalled
before its time limit (README, "Clusters"). Lightning resumes from it only when no checkpoint
is named, so it is a candidate here too, ordered with the others by modification time: the
requeued job resumes from it, and a later failure from whatever was written after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lit_transformer.training.average import CheckpointError, _load, find_checkpoints


def resumable_checkpoint(
    ckpt_dir: Path, requeue: Sequence[Path] = ()
) -> tuple[Path | None, list[str]]:
    """(the newest checkpoint in ``ckpt_dir`` or ``requeue`` that loads or None, one line per
    skipped one)."""
    if not ckpt_dir.is_dir() and not requeue:
        return None, []
    last = ckpt_dir / "last.ckpt"
    skipped: list[str] = []
    try:
        periodic = find_checkpoints(ckpt_dir)[::-1]
    except CheckpointError as exc:  # an oddly named file that could not be read for its step
        periodic, skipped = [], [f"skipped the periodic checkpoints: {exc}"]
    candidates = ([last] if last.is_file() else []) + periodic
    if requeue:  # newest first; a stable sort keeps last.ckpt before a periodic one of its time
        candidates = sorted([*requeue, *candidates], key=lambda p: -p.stat().st_mtime)
    for path in candidates:
        try:
            data = _load(path)
        except CheckpointError as exc:
            skipped.append(f"skipped {exc}")
            continue
        if "state_dict" not in data or "loops" not in data:
            skipped.append(f"skipped {path}: not a training checkpoint (no loop state)")
            continue
        return path, skipped
    return None, skipped


def checkpoint_step(path: Path) -> int:
    """The optimizer step a training checkpoint was saved at (memory-mapped: a large
    checkpoint is not read whole for one number)."""
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["global_step"])
