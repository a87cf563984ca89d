"""Which GPUs each worker of a sweep gets: one disjoint slice of the host's GPUs per worker.

Without it every single-GPU trial of a multi-worker sweep would start on ``cuda:0`` and the
trials would stack on one GPU while the others idle. Worker ``i`` of ``K``, with trials of
``D`` devices, gets GPUs ``[i·D, (i+1)·D)`` of the host's list as its ``CUDA_VISIBLE_DEVICES``;
its trials inherit it, and each trial records it (user attribute ``cuda_visible_devices``).
"""

from __future__ import annotations

import os

from lit_transformer.config import ConfigError


def host_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` as given (SLURM sets it to an
    allocation's GPUs; it may hold UUIDs), else every GPU torch counts."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_gpus(workers: int, devices: int, gpus: list[str]) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each of ``workers`` (None for all on a host without GPUs)."""
    if not gpus:
        return [None] * workers
    need = workers * devices
    if need > len(gpus):
        raise ConfigError(
            f"{workers} workers x {devices} device(s) per trial need {need} GPUs, this host has "
            f"{len(gpus)} ({','.join(gpus)}): use --workers {max(1, len(gpus) // devices)}"
        )
    return [",".join(gpus[i * devices : (i + 1) * devices]) for i in range(workers)]
