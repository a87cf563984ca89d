"""sbatch scripts for a cluster: one DDP trial over nodes × devices, or a sweep as a job array.

**A trial** (``slurm trial``) is one ``srun`` step of ``nodes × devices`` tasks, one per
device: Lightning's ``SLURMEnvironment`` reads each task's rank from ``SLURM_PROCID``,
``SLURM_LOCALID`` and ``SLURM_NODEID`` and the main node from ``SLURM_NODELIST``. Requeue is
Lightning's auto-requeue: ``--signal=SIGUSR1@90`` asks SLURM to signal the tasks 90 s before
the time limit (or a preemption with a grace time); Lightning saves ``DIR/hpc_ckpt_N.ckpt``
and runs ``scontrol requeue``, and the requeued job resumes from the newest checkpoint that
loads (``training/resume.py``).

**A sweep** (``slurm sweep``) is a job array of workers, one task each with the GPUs of one
trial, all on one PostgreSQL study. Requeue is the sweep's own heartbeat retry, not
Lightning's: a worker's trial is the worker's child process, unknown to SLURM, and any worker
of the array may resume it from its checkpoint on the shared file system. A preempted task
(``--requeue``) simply rejoins the study. The workers strip ``srun``'s task variables from
their trials (``sweep/launch.py``), so that Lightning starts a multi-GPU trial's ranks itself.

The storage URL in a script never holds a password: libpq reads it from ``~/.pgpass`` (or
``PGPASSFILE``) on the compute nodes.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from lit_transformer.config import ConfigError
from lit_transformer.sweep.storage import STORAGE_ENV, redact

REQUEUE_SIGNAL_S = 90  # time for Lightning to write a checkpoint before SLURM's time limit


@dataclass
class Allocation:
    """What one job asks SLURM for (``None``: the cluster's default)."""

    job_name: str
    nodes: int = 1
    devices: int = 1  # per node (a trial) or per array task (a sweep worker)
    accelerator: str = "gpu"
    cpus_per_task: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines before srun (a venv, modules)

    def validate(self) -> None:
        for name in ("nodes", "devices", "cpus_per_task"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer, got {value!r}")
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.accelerator not in ("gpu", "cpu"):
            raise ConfigError(f"--accelerator must be gpu or cpu, got {self.accelerator!r}")

    def header(self, tasks_per_node: int, output: str) -> list[str]:
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={self.job_name}",
            f"#SBATCH --nodes={self.nodes}",
            f"#SBATCH --ntasks-per-node={tasks_per_node}",
        ]
        if self.accelerator == "gpu":
            lines.append(f"#SBATCH --gpus-per-node={self.devices}")
        for flag, value in (
            ("cpus-per-task", self.cpus_per_task),
            ("time", self.time),
            ("partition", self.partition),
            ("account", self.account),
        ):
            if value is not None:
                lines.append(f"#SBATCH --{flag}={value}")
        lines += ["#SBATCH --requeue", "#SBATCH --open-mode=append"]
        return [*lines, f"#SBATCH --output={output}"]


def reject_password(url: str | None) -> None:
    if url and redact(url) != url:
        raise ConfigError(
            "the storage URL holds a password, which a script would show to every user of the "
            "cluster: put it in ~/.pgpass (host:port:db:user:password) and give the URL without it"
        )


def trial_script(alloc: Allocation, fit_args: Sequence[str], out: str, written_by: str) -> str:
    """One DDP trial of ``alloc.nodes × alloc.devices`` ranks: ``srun lit-transformer fit``."""
    alloc.validate()
    for word in fit_args:
        name = word.split("=", 1)[0]
        if name in ("--out", "--trainer.num_nodes", "--trainer.devices", "--trainer.accelerator"):
            raise ConfigError(
                f"{name} is set by the script (--out, --nodes, --devices, --accelerator of "
                "`slurm trial`): leave it out of the fit arguments"
            )
    fit = ["lit-transformer", "fit", *fit_args]
    fit += ["--trainer.num_nodes", str(alloc.nodes), "--trainer.devices", str(alloc.devices)]
    fit += ["--trainer.accelerator", alloc.accelerator, "--out", out]
    lines = alloc.header(alloc.devices, f"{out}/slurm-%j.out")
    lines.append(f"#SBATCH --signal=SIGUSR1@{REQUEUE_SIGNAL_S}")
    lines += [
        f"# Written by: {written_by}",
        "# One task per device; Lightning reads the ranks from srun's variables, saves",
        "# hpc_ckpt_N.ckpt on SIGUSR1 and requeues; the requeued job resumes from it.",
        "set -euo pipefail",
        *alloc.setup,
        "srun " + shlex.join(fit),
    ]
    return "\n".join(lines) + "\n"


def sweep_script(
    alloc: Allocation,
    spec: str,
    workers: int,
    run_dir: str,
    written_by: str,
    storage: str | None = None,
    study_name: str | None = None,
    seeds: Sequence[int] | None = None,
) -> str:
    """A job array of ``workers`` sweep workers on one study, each with ``alloc.devices``."""
    alloc.validate()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if alloc.nodes != 1:
        raise ConfigError("a sweep worker runs on one node: --nodes must be 1 for `slurm sweep`")
    reject_password(storage)
    if storage and not storage.startswith(("postgresql", "postgres:")):
        raise ConfigError(
            "a job array's workers share the study from several hosts: use a postgresql:// "
            f"storage URL, not {storage.split(':', 1)[0]} (SQLite's file lock is not safe on a "
            "network file system)"
        )
    sweep = ["lit-transformer", "sweep", spec, "--workers", "1"]
    sweep += ["--devices", str(alloc.devices), "--run-dir", run_dir]
    if study_name:
        sweep += ["--study-name", study_name]
    if seeds:
        sweep += ["--seeds", ",".join(map(str, seeds))]
    lines = alloc.header(1, f"{run_dir}/slurm-%A_%a.out")
    lines.append(f"#SBATCH --array=0-{workers - 1}")
    lines += [
        f"# Written by: {written_by}",
        "# Each array task is one worker: it claims a row x seed, runs it, and claims the next.",
        "# A trial cut off (preemption, time limit) is retried by the study's heartbeat, from",
        "# its checkpoint on the shared file system; a requeued task rejoins the study.",
        "set -euo pipefail",
    ]
    if storage:
        lines.append(f"export {STORAGE_ENV}={shlex.quote(storage)}  # password: ~/.pgpass")
    else:
        lines.append(
            f': "${{{STORAGE_ENV}:?set it to the study URL, postgresql://USER@HOST/DB, '
            'before sbatch; the password goes in ~/.pgpass}"'
        )
    lines += [*alloc.setup, "srun " + shlex.join(sweep)]
    return "\n".join(lines) + "\n"
