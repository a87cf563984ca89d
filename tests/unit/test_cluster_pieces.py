"""Cluster pieces that need no cluster: who is rank 0, which GPUs a worker gets, what a
requeued SLURM job resumes from, and what a worker leaves of srun's task variables."""

from __future__ import annotations

import os
import time

import pytest
import torch

from lit_transformer.config import ConfigError
from lit_transformer.provenance import is_rank_zero
from lit_transformer.sweep.gpus import worker_gpus
from lit_transformer.sweep.launch import SRUN_TASK_VARIABLES, leave_srun_task
from lit_transformer.training.resume import resumable_checkpoint

LAUNCH = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_JOB_NAME")


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "1", "LOCAL_RANK": "0"}, False),  # torchrun, node 1
        ({"LOCAL_RANK": "1"}, False),  # Lightning's second rank on a node
        ({"NODE_RANK": "1"}, False),  # Lightning's launcher, node 1, before RANK is set
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, False),  # srun task 1
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}, True),
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "bash"}, True),
    ],
)
def test_rank_zero_under_each_launcher(monkeypatch, env, zero):
    for name in LAUNCH:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is zero


def test_each_worker_gets_its_own_gpus():
    assert worker_gpus(4, 1, ["0", "1", "2", "3"]) == ["0", "1", "2", "3"]
    assert worker_gpus(2, 2, ["4", "5", "6", "7"]) == ["4,5", "6,7"]
    assert worker_gpus(1, 1, ["GPU-a1", "GPU-b2"]) == ["GPU-a1"]  # UUIDs as SLURM may give
    assert worker_gpus(3, 1, []) == [None, None, None]  # no GPUs: nothing to place
    with pytest.raises(ConfigError, match="need 4 GPUs, this host has 2.*--workers 1"):
        worker_gpus(2, 2, ["0", "1"])


def _training_checkpoint(path, step: int, mtime: float) -> None:
    torch.save({"state_dict": {}, "loops": {}, "global_step": step}, path)
    os.utime(path, (mtime, mtime))


def test_a_requeued_jobs_hpc_checkpoint_is_resumed_when_newest(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    now = time.time()
    _training_checkpoint(ckpts / "step0000010.ckpt", 10, now - 30)
    _training_checkpoint(ckpts / "last.ckpt", 10, now - 30)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    _training_checkpoint(hpc, 13, now - 10)  # SIGUSR1 came after the last periodic one
    assert resumable_checkpoint(ckpts, [hpc]) == (hpc, [])
    _training_checkpoint(ckpts / "last.ckpt", 20, now)  # trained on after resuming from it
    assert resumable_checkpoint(ckpts, [hpc])[0] == ckpts / "last.ckpt"
    (ckpts / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    found, skipped = resumable_checkpoint(ckpts, [hpc])
    assert found == hpc and len(skipped) == 1 and "last.ckpt" in skipped[0]


def test_a_worker_drops_srun_task_variables(monkeypatch):
    for name in SRUN_TASK_VARIABLES:
        monkeypatch.setenv(name, "2")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    leave_srun_task()
    assert not any(name in os.environ for name in SRUN_TASK_VARIABLES)
    assert os.environ["SLURM_JOB_ID"] == "42"  # the job's own variables stay
