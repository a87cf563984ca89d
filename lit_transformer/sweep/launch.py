"""How a worker starts a trial's process: ``run_trial(DIR)``, forked or as a command.

Every trial is its own process (rule *one sampler*, ARCHITECTURE.md). Starting one as a fresh
interpreter re-imports torch, Lightning and W&B each time, a large part of a short trial's
fixed cost (BENCHMARKS.md, "Trial start-up"). So a worker forks single-device trials from a
*fork server*: a clean process started once per worker, which has only imported those
modules. It has opened no files, sockets or thread pools, so each trial starts the way a fresh
interpreter would, minus the imports, and calls ``run_trial(DIR)``.

DDP trials (``devices > 1``) start as the one minimal command ``python -m lit_transformer
trial DIR``: Lightning's ``ddp`` re-launches ``sys.argv`` for every rank.
``LIT_TRANSFORMER_TRIAL_LAUNCH=subprocess`` turns the fork server off.

A worker started by ``srun`` (a SLURM job array, README "Clusters") is one task; its trials
are not. Lightning would read ``srun``'s task variables as the trial's world (one task) and
refuse a multi-GPU trial, so a worker drops them before any trial starts: Lightning then
starts a DDP trial's ranks itself, on the GPUs of the worker's allocation.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from lit_transformer.config import ConfigError

LAUNCH_ENV = "LIT_TRANSFORMER_TRIAL_LAUNCH"
# wandb.init imports its launch-inputs module lazily (BENCHMARKS.md, "Trial start-up"). The
# fork server skips a module that fails to import, so a W&B release without it costs nothing.
PRELOAD = [
    "lit_transformer.training.trial",
    "lit_transformer.training.run",
    "sacrebleu",
    "wandb",
    "wandb.sdk.launch.inputs.internal",
]


# What makes Lightning take a process for an srun task (SLURMEnvironment.detect and its checks).
SRUN_TASK_VARIABLES = (
    "SLURM_NTASKS",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_NNODES",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
)


def leave_srun_task() -> None:
    """Forget this process's srun task variables, for the trials it starts (see above)."""
    for name in SRUN_TASK_VARIABLES:
        os.environ.pop(name, None)


def die_with_parent() -> None:
    """Get SIGKILL when the parent dies, so no orphan keeps training."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def launch_mode() -> str:
    mode = os.environ.get(LAUNCH_ENV, "fork")
    if mode not in ("fork", "subprocess"):
        raise ConfigError(f"{LAUNCH_ENV} must be 'fork' or 'subprocess', got {mode!r}")
    return mode


def use_fork_server(devices: int) -> bool:
    return launch_mode() == "fork" and devices == 1 and sys.platform == "linux"


def _trial_main(trial_dir: str, log: str, env: dict[str, str]) -> None:
    """The trial process: output to its log, then ``run_trial(trial_dir)``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # The fork server is our parent. It exits once the worker and every trial have closed
    # its "alive" pipe, which it hands to each child: close ours, so a dead worker takes the
    # fork server and, through the parent-death signal, this trial with it.
    from multiprocessing import forkserver

    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # the fork server died before the signal was armed
        os._exit(1)
    alive = forkserver._forkserver._forkserver_alive_fd  # noqa: SLF001
    if alive is not None:
        os.close(alive)
        forkserver._forkserver._forkserver_alive_fd = None  # noqa: SLF001
    # A fresh interpreter's default start method (a forked child inherits "forkserver"), for
    # DataLoader workers and anything else the trial starts.
    multiprocessing.set_start_method(None, force=True)
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = ["lit-transformer", "trial", trial_dir]
    code = 1
    try:
        from lit_transformer.errors import exit_code_of
        from lit_transformer.malloc import reuse_freed_memory
        from lit_transformer.training.trial import run_trial

        reuse_freed_memory()
        code = exit_code_of(lambda: run_trial(trial_dir))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the log gets the traceback, the worker the code
        traceback.print_exc()
    finally:
        # A forked process leaves through os._exit, which skips what interpreter exit does:
        # join non-daemon threads, then run the atexit handlers (W&B finishes its run there).
        threading._shutdown()  # noqa: SLF001
        atexit._run_exitfuncs()  # noqa: SLF001
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


class ForkedTrial:
    """A forked trial with the part of ``subprocess.Popen``'s interface a worker uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("trial", timeout or 0.0)
        return self.process.exitcode


class TrialLauncher:
    """Starts trials: forked from this worker's fork server, or as a command line."""

    def __init__(self) -> None:
        launch_mode()  # a bad setting fails before any trial is claimed
        leave_srun_task()  # before the fork server starts: it and every trial inherit this
        self._ctx: multiprocessing.context.ForkServerContext | None = None

    def start(
        self, trial_dir: Path, log: Path, env: dict[str, str], devices: int
    ) -> ForkedTrial | subprocess.Popen:
        """Start ``run_trial(trial_dir)``, its output appended to ``log``."""
        if not use_fork_server(devices):
            with open(log, "ab") as fh:
                return subprocess.Popen(
                    [sys.executable, "-m", "lit_transformer", "trial", str(trial_dir)],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                    preexec_fn=die_with_parent,
                )
        if self._ctx is None:
            self._ctx = multiprocessing.get_context("forkserver")
            self._ctx.set_forkserver_preload(PRELOAD)
        process = self._ctx.Process(
            target=_trial_main, args=(str(trial_dir), str(log), env), daemon=False
        )
        process.start()
        return ForkedTrial(process)
