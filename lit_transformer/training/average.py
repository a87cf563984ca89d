"""Checkpoint averaging (§6.1): the mean of the last K checkpoints' weights.

The paper averages the last 5 checkpoints (written at 10-minute intervals) for base models and
the last 20 for big ones. Checkpoints are ordered by their ``global_step``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lit_transformer.errors import UserError


class CheckpointError(UserError):
    pass


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None


def find_checkpoints(directory: Path) -> list[Path]:
    """Periodic checkpoints in ``directory`` (not ``last*.ckpt``), oldest first by step."""
    paths = [p for p in directory.glob("*.ckpt") if not p.name.startswith("last")]
    return sorted(paths, key=_step)


def _step(path: Path) -> int:
    # Our periodic checkpoints are named stepNNNNNNN.ckpt: read the step from the name rather
    # than loading (paper-scale checkpoints are ~1 GB each, and averaging loads them anyway).
    match = re.fullmatch(r"step(\d+)\.ckpt", path.name)
    if match:
        return int(match.group(1))
    return int(_load(path)["global_step"])


def average_checkpoints(paths: Sequence[Path]) -> dict[str, Any]:
    """A checkpoint whose ``state_dict`` is the element-wise mean of the inputs'."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    first = _load(Path(paths[0]))
    total = {
        k: v.double().clone() if v.is_floating_point() else v
        for k, v in first["state_dict"].items()
    }
    for path in paths[1:]:
        state = _load(Path(path))["state_dict"]
        if state.keys() != total.keys():
            raise CheckpointError(f"{path}: parameters differ from {paths[0]}")
        for k, v in state.items():
            if v.is_floating_point():
                total[k] += v.double()
    dtype = {k: v.dtype for k, v in first["state_dict"].items()}
    first["state_dict"] = {
        k: (v / len(paths)).to(dtype[k]) if v.is_floating_point() else v for k, v in total.items()
    }
    first["averaged_from"] = [str(p) for p in paths]
    for key in ("optimizer_states", "lr_schedulers", "callbacks", "loops"):
        first.pop(key, None)  # an average is for evaluation, not for resuming
    return first


def save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
