"""The sweep orchestrator: the only code that asks Optuna for parameters (rule *one sampler*,
ARCHITECTURE.md).

Each worker claims a trial under the study lock, freezes everything the trial runs into
``DIR/trial.json`` (:class:`~lit_transformer.training.trial.TrialSpec`), and runs
``run_trial(DIR)`` as its own process (one process, or a DDP job over ``devices``) while it
keeps the trial's heartbeat. The trial's ``result.json``
becomes the objective (dev perplexity) and user attributes. DDP ranks never sample.

A worker that dies leaves its trial RUNNING without heartbeats: after the grace period any
worker (or a re-run of the same command) marks it FAIL, the retry callback re-enqueues it,
and the retried trial resumes from ``DIR/checkpoints/last.ckpt`` in the same directory. A
worker that is stopped (Ctrl-C, SIGTERM), or whose trial is killed, says so at once: the trial
is FAIL with ``interrupted`` and its retry is enqueued (:func:`interruption`, :func:`retry_now`).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from lit_transformer.config import ConfigError, TrainerConfig
from lit_transformer.errors import EXIT_USAGE, Terminated
from lit_transformer.provenance import git_commit
from lit_transformer.sweep.launch import TrialLauncher
from lit_transformer.sweep.samplers import build_pruner, build_sampler
from lit_transformer.sweep.spec import EQUAL_STEPS, EQUAL_TIME, SweepSpec
from lit_transformer.sweep.status import all_params
from lit_transformer.sweep.stop import held
from lit_transformer.sweep.storage import (
    HEARTBEAT_INTERVAL,
    STORAGE_ENV,
    load_or_create_study,
    open_storage,
    study_lock,
)
from lit_transformer.training.progress_text import attempt_line, current_attempt
from lit_transformer.training.trial import FAILURE_FILE, TrialSpec, write_trial

POLL_S = 2.0
# A FAILed trial's user attribute: why it was stopped from outside (a signal), not a result.
INTERRUPTED = "interrupted"
# multiprocessing's exit code for a forked trial whose fork server died under it.
FORK_SERVER_GONE = 255
# Signals that stop a trial from outside (a user, a session's end, a scheduler, the OOM
# killer); any other signal (SIGSEGV, SIGABRT, ...) is a crash of the trial's own.
STOPPED_BY = (signal.SIGHUP, signal.SIGINT, signal.SIGKILL, signal.SIGTERM)


SEED_RANGE = (0, 2**31 - 1)


def _key(trial: optuna.trial.FrozenTrial) -> tuple[str, int] | None:
    """(row, seed) of a grid trial: its params, or the fixed params of an enqueued one."""
    params = all_params(trial)
    if "row" in params and "seed" in params:
        return str(params["row"]), int(params["seed"])
    return None


def enqueue_grid(study: optuna.Study, spec: SweepSpec) -> int:
    """Enqueue each row × seed that no trial covers yet (call under the study lock).

    A pair is covered by any trial that is WAITING, RUNNING or COMPLETE, or that ended with a
    result of its own (:func:`is_result`). A trial FAILed by a stale heartbeat is covered by
    the retry its callback enqueued; one FAILed by bad input is run again."""
    covered = set()
    for t in study.get_trials(deepcopy=False):
        key = _key(t)
        if key is None:
            continue
        if t.state != TrialState.FAIL or is_result(t):
            covered.add(key)
    added = 0
    for row, seed in spec.grid:
        if (row, seed) not in covered:
            study.enqueue_trial({"row": row, "seed": seed}, skip_if_exists=False)
            added += 1
    return added


def is_result(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a FAILed trial's end is a finding about the trial (it diverged or crashed: its
    ``fail_reason``), not work to redo. Two kinds of FAIL are work to redo: a stale heartbeat
    (no reason; the retry callback re-enqueues it) and bad input, a trial that exited with
    the user-error status (a missing data root, a bad value): its reason says what to fix, and
    the run after the fix runs it, so a wrong environment never marks a grid done."""
    reason = t.user_attrs.get("fail_reason")
    return reason is not None and not reason.startswith(f"exit code {EXIT_USAGE}:")


def interruption(code: int) -> str | None:
    """Why a trial's process was stopped from outside, from its exit code, or None when it
    ended on its own (a result, a crash, bad input). A stop is a signal: ``-N`` (killed by
    signal N), ``128 + N`` for a stop signal (how a shell, or the trial itself on SIGINT or
    SIGTERM, reports it) or ``FORK_SERVER_GONE`` (the signal took the trial's fork server).
    A stopped trial is work to redo (:func:`retry_now`), never a result: stopping a sweep
    with ``kill`` must not mark its running trials done."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}" if -code in STOPPED_BY else None
    if code == FORK_SERVER_GONE:
        return "its fork server was killed (exit code 255)"
    if code - 128 in STOPPED_BY:
        return f"stopped by {signal.Signals(code - 128).name} (exit code {code})"
    return None


def retry_now(study: optuna.Study, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
    """Re-enqueue a FAILed trial that was stopped, as the stale-heartbeat callback would after
    the grace period: same row and seed, so the retry resumes from its checkpoint; at most
    ``max_retry`` times (call under the study lock). The retry does not inherit the reason."""
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is None:
        return
    frozen = copy.deepcopy(storage.get_trial(trial_id))
    frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k != INTERRUPTED}
    callback(study, frozen)


def _hpo_budget_left(study: optuna.Study, spec: SweepSpec) -> int:
    used = sum(
        1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL or is_result(t)
    )
    return spec.n_trials - used


def claim(
    study: optuna.Study,
    spec: SweepSpec,
    resumable: Callable[[optuna.trial.FrozenTrial], bool] | None = None,
) -> optuna.Trial | None:
    """The next trial for this worker, or None when there is nothing to start now.

    A retried trial (its worker died) comes first, one whose checkpoints are on this machine
    (``resumable``) before the others: it resumes from its last checkpoint, so the work
    already done is not left waiting behind the rest of the study. Otherwise the oldest
    WAITING trial, as ``study.ask()`` takes it (call under the study lock)."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    retries = [
        t for t in waiting if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None
    ]
    if resumable is not None:
        retries.sort(key=lambda t: not resumable(t))  # stable: oldest first within each
    storage = study._storage  # noqa: SLF001 - ask() has no way to name the trial it takes
    for t in retries:
        if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):  # noqa: SLF001
            return optuna.Trial(study, t._trial_id)  # noqa: SLF001
    if spec.kind == "grid":
        if not waiting:
            return None
        return study.ask()
    if not waiting and _hpo_budget_left(study, spec) <= 0:
        return None
    return study.ask()


def claim_next(
    storage: optuna.storages.RDBStorage,
    study: optuna.Study,
    name: str,
    spec: SweepSpec,
    resumable: Callable[[optuna.trial.FrozenTrial], bool] | None = None,
) -> tuple[optuna.Trial | None, dict[str, float]]:
    """One claim as a worker makes it: under the study lock, fail stale trials, claim the next
    trial (:func:`claim`) and record its first heartbeat. Returns the trial (or None) and how
    long this worker waited for the lock and held it (README, "Which storage at what scale")."""
    t0 = time.perf_counter()
    with held(), study_lock(storage, name):  # a stop waits: no claim without its heartbeat
        t1 = time.perf_counter()
        # Under the lock: failing a stale trial and enqueueing its retry are two writes, and a
        # worker that enqueues the grid between them would see the pair uncovered and enqueue
        # it a second time (the 8-worker load test did).
        optuna.storages.fail_stale_trials(study)
        trial = claim(study, spec, resumable)
        if trial is not None:
            storage.record_heartbeat(trial._trial_id)  # noqa: SLF001
    return trial, {"lock_wait_s": t1 - t0, "claim_s": time.perf_counter() - t1}


def trial_params(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    """row, seed and sampled config values. Enqueued/retried trials return their fixed values."""
    if spec.kind == "grid":
        # Stable distributions across trials and re-runs: all rows of the file, any seed.
        row = trial.suggest_categorical("row", spec.ablation.row_ids)
        return {"row": str(row), "seed": trial.suggest_int("seed", *SEED_RANGE)}
    params: dict[str, Any] = {"row": spec.rows[0]}
    for key, dist in spec.search_space.items():
        kind = dist["type"]
        if kind == "float":
            params[key] = trial.suggest_float(
                key, dist["low"], dist["high"], log=dist.get("log", False)
            )
        elif kind == "int":
            params[key] = trial.suggest_int(
                key, dist["low"], dist["high"], log=dist.get("log", False)
            )
        else:
            params[key] = trial.suggest_categorical(key, dist["choices"])
    original = RetryHeartbeatStaleTrialCallback.retried_trial_number(
        trial.study._storage.get_trial(trial._trial_id)  # noqa: SLF001
    )
    number = trial.number if original is None else original
    params["seed"] = spec.hpo_seed(number)
    return params


def hardware() -> str:
    """A one-line description of this machine (CPU model, capability, cores, GPUs)."""
    import torch

    from lit_transformer.precision import cpu_description

    text = cpu_description()
    if torch.cuda.is_available():
        text += f", {torch.cuda.device_count()}x {torch.cuda.get_device_name()}"
    return text


def record_provenance(study: optuna.Study, spec: SweepSpec, command: str) -> None:
    """What ran, on what, for reports: set once per study; a later run with a different
    command (more seeds, say) is added to ``commands``."""
    attrs = study.user_attrs
    if "ablation" not in attrs:
        study.set_user_attr("ablation", str(spec.ablation.path.resolve()))
        study.set_user_attr("spec", str(spec.path))
        study.set_user_attr("hardware", hardware())
        study.set_user_attr("budget", dict(spec.budget))
        study.set_user_attr("protocol", spec.protocol)
        trainer = spec.overrides.get("trainer") or {}
        counts = trainer.get("budget_counts_validation", TrainerConfig.budget_counts_validation)
        if spec.protocol == EQUAL_TIME:
            counts = False
        study.set_user_attr("budget_counts_validation", counts)
        study.set_user_attr("command", command)
    if spec.budget_why and attrs.get("budget_why") != spec.budget_why:
        study.set_user_attr("budget_why", spec.budget_why)  # the spec's words, as they are now
    commands = attrs.get("commands") or [attrs.get("command", command)]
    if command not in commands:
        study.set_user_attr("commands", [*commands, command])


SMALL_MACHINE_CORES = 4


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(devices: int = 1, protocol: str = EQUAL_STEPS) -> int:
    """Workers for ``sweep`` without ``--workers``. On a GPU host one per ``devices`` GPUs,
    each on its own (``sweep/gpus.py``). For an equal-steps study on a small CPU machine, one
    single-threaded trial per core: small models use two threads poorly, and single-thread
    workers train more steps of the whole machine (BENCHMARKS.md, "Sweeps on 2 cores"). A time
    budget keeps one worker with every core, so that its trials' compute does not depend on
    how many run at once; so do larger CPU machines (not measured)."""
    import torch

    from lit_transformer.sweep.gpus import host_gpus

    if torch.cuda.is_available():
        return max(1, len(host_gpus()) // devices)
    cores = usable_cores()
    small_cpu = not torch.cuda.is_available() and devices == 1 and cores <= SMALL_MACHINE_CORES
    return cores if small_cpu and protocol == EQUAL_STEPS else 1


def requested_precision(spec: SweepSpec) -> tuple[object, str]:
    """(precision, accelerator) a trial of ``spec`` asks for: the spec's overrides, else the
    ablation file's (``auto`` in the committed files)."""
    cfg = spec.ablation.row_config(spec.rows[0], spec.trial_overrides({"row": spec.rows[0]}))
    return cfg.trainer.precision, cfg.trainer.accelerator


def _precisions_run(study: optuna.Study) -> set[str]:
    """Precisions the study's finished trials ran: their user attribute, else their
    ``result.json`` (trials from before the attribute was recorded)."""
    ran = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        precision = t.user_attrs.get("precision")
        if precision is None and t.user_attrs.get("out_dir"):
            try:
                result = json.loads((Path(t.user_attrs["out_dir"]) / "result.json").read_text())
                precision = result["config"]["trainer"]["precision"]
            except (OSError, KeyError, ValueError):
                precision = None
        if precision is not None:
            ran.add(str(precision))
    return ran


def pin_precision(study: optuna.Study, spec: SweepSpec) -> str:
    """The study's precision (call under the study lock): the first worker resolves the spec's
    precision on its machine and records it; every later worker, on whatever hardware, runs
    that precision, so one study never mixes precisions (a bf16 study continued on a CPU
    without fast bf16 says so in one warning line, and stays bf16)."""
    from lit_transformer.precision import normalize, resolve, slow_precision_warning

    requested, accelerator = requested_precision(spec)
    pinned = study.user_attrs.get("precision")
    if pinned is None:
        ran = _precisions_run(study)
        if len(ran) > 1:
            raise ConfigError(
                f"study {study.study_name} already mixes precisions {sorted(ran)}; "
                "start a new study"
            )
        if ran:  # a study from before pinning: what its trials ran
            pinned, why = ran.pop(), "as its earlier trials ran"
        else:
            pinned, why = resolve(requested, accelerator)
        study.set_user_attr("precision", pinned)
        study.set_user_attr("precision_reason", f"{why}; on {hardware()}")
        print(f"study {study.study_name}: precision {pinned} ({why})", flush=True)
        return pinned
    if normalize(requested) not in ("auto", pinned):
        raise ConfigError(
            f"study {study.study_name} is pinned to precision {pinned}, the spec asks for "
            f"{requested}: one study never mixes precisions (start a new study)"
        )
    warning = slow_precision_warning(pinned, accelerator)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return pinned


class Heartbeat:
    """A claimed trial's heartbeat, from a thread, from the claim to the trial's end.

    A heartbeat kept only between waits for the trial process would stop while the worker
    does anything else: on a loaded machine, starting the fork server (importing torch,
    Lightning and W&B) took longer than the grace period, and another worker failed the live
    trial as stale (the 8-worker load test). The thread also notices when that happened all
    the same (a stopped worker): ``lost``, and the worker gives the trial up to its retry."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            try:
                if self.storage.get_trial(self.trial_id).state != TrialState.RUNNING:
                    self.lost = True
                    return
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # noqa: BLE001 - a database hiccup: try again next beat
                print(f"warning: heartbeat failed: {exc}", file=sys.stderr, flush=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()  # the claim recorded the first beat (claim_next)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Worker:
    def __init__(
        self,
        spec: SweepSpec,
        storage_url: str,
        study_name: str,
        run_dir: Path,
        threads: int | None = None,
        wandb: str = "offline",
        command: str | None = None,
    ) -> None:
        """``command``: the user's command line, recorded with the study (None in the worker
        processes a multi-worker sweep starts, whose parent records it)."""
        self.spec, self.url, self.name = spec, storage_url, study_name
        self.launcher = TrialLauncher()
        self.run_dir = run_dir
        self.threads = threads
        self.wandb = wandb
        self.storage = open_storage(storage_url, spec.max_retry)
        self.study = load_or_create_study(
            self.storage, study_name, build_sampler(spec.sampler), build_pruner(spec.pruner)
        )
        if command is not None:
            record_provenance(self.study, spec, command)

    def run(self) -> int:
        """Work until the study has nothing left; returns the number of trials run.

        Stopped (Ctrl-C, SIGTERM: ``sweep/stop.py``), the worker hands the trial it holds to
        its retry now, rather than after the heartbeat's grace period (:meth:`interrupt`; a
        trial whose end is already recorded is left as it is)."""
        with held(), study_lock(self.storage, self.name):
            if self.spec.kind == "grid":
                enqueue_grid(self.study, self.spec)
            self.precision = pin_precision(self.study, self.spec)
        self.holding: optuna.Trial | None = None
        try:
            return self._work()
        except (KeyboardInterrupt, Terminated) as exc:
            if self.holding is not None:
                name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
                self.interrupt(self.holding, f"its worker was stopped by {name}")
            raise

    def _work(self) -> int:
        done = 0
        while True:
            self.holding = None
            with held():  # a stop here is raised once the claimed trial is ours to hand back
                self.holding, timing = claim_next(
                    self.storage, self.study, self.name, self.spec, self.has_checkpoint
                )
            trial = self.holding
            if trial is None:
                running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not running:
                    return done
                time.sleep(POLL_S)  # another worker may die; its trial would come back
                continue
            with Heartbeat(self.storage, trial._trial_id) as beat:  # noqa: SLF001
                try:
                    ended = self.run_trial(trial, {k: round(v, 4) for k, v in timing.items()}, beat)
                except optuna.exceptions.UpdateFinishedTrialError:
                    beat.lost = True
            try:
                if not beat.lost:
                    self.finish(trial, *ended)
            except optuna.exceptions.UpdateFinishedTrialError:
                beat.lost = True
            if beat.lost:
                print(
                    f"warning: trial {trial.number} was marked FAIL while this worker ran it "
                    "(its heartbeat was late): its retry runs it, this worker goes on",
                    file=sys.stderr,
                    flush=True,
                )
            elif ended[1] == EXIT_USAGE:
                # Bad input fails every trial alike: stop here rather than fail the rest.
                attrs = self.storage.get_trial(trial._trial_id).user_attrs  # noqa: SLF001
                reason = attrs["fail_reason"].split("error: ", 1)[-1]
                raise ConfigError(
                    f"trial {trial.number} stopped on bad input: {reason} (fix it and run the "
                    "same command again: it runs this trial again)"
                )
            done += 1

    def directory(self, row: Any, seed: Any, number: int) -> Path:
        """A trial's directory: ``RUN_DIR/STUDY/ROW/seedS`` in a grid, ``RUN_DIR/STUDY/trialNNNN``
        (the number of the trial it retries, if any) in a search; a retry reuses it."""
        base = self.run_dir / self.name
        if self.spec.kind == "grid":
            return base / str(row) / f"seed{seed}"
        return base / f"trial{number:04d}"

    def has_checkpoint(self, frozen: optuna.trial.FrozenTrial) -> bool:
        """Whether a waiting retry finds a checkpoint in its directory on this machine."""
        fixed = frozen.system_attrs.get("fixed_params") or {}
        original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        if original is None or (self.spec.kind == "grid" and not {"row", "seed"} <= set(fixed)):
            return False
        out = self.directory(fixed.get("row"), fixed.get("seed"), original)
        return any((out / "checkpoints").glob("*.ckpt"))

    def trial_dir(self, trial: optuna.Trial, params: dict[str, Any]) -> Path:
        original = None
        if self.spec.kind != "grid":
            frozen = self.storage.get_trial(trial._trial_id)  # noqa: SLF001
            original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        number = trial.number if original is None else original
        return self.directory(params["row"], params["seed"], number)

    def run_trial(
        self, trial: optuna.Trial, timing: dict[str, float] | None = None, beat=None
    ) -> tuple[Path, int, float]:
        """Freeze the trial, run its process to the end: (its directory, exit code, wall s)."""
        spec = self.spec
        params = trial_params(trial, spec)
        out = self.trial_dir(trial, params)
        overrides = spec.trial_overrides(params)
        overrides["trainer"]["precision"] = self.precision  # pinned by the study
        overrides["trainer"]["wandb"] = self.wandb
        write_trial(
            out,
            TrialSpec(
                study=self.name,
                trial_id=trial._trial_id,  # noqa: SLF001
                number=trial.number,
                ablation=str(spec.ablation.path),
                row=params["row"],
                seed=params["seed"],
                overrides=overrides,
                test=spec.test,
                prune=spec.kind == "hpo",
                pruner=spec.pruner,
                protocol=spec.protocol,
            ),
        )
        for key, value in {
            "row": params["row"],
            "seed": params["seed"],
            "protocol": spec.protocol,
            "git_commit": git_commit(),
            "out_dir": str(out.resolve()),
            "host": socket.gethostname(),
            "hardware": hardware(),
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            **(timing or {}),
        }.items():
            if value is None:
                continue
            trial.set_user_attr(key, value)
        env = {STORAGE_ENV: self.url}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        with open(out / "trial.log", "a", encoding="utf-8") as log:
            # A retry appends to the same log: mark where this attempt's output begins.
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.write(attempt_line(trial.number, when, socket.gethostname()) + "\n")
        t0 = time.time()
        proc = None
        try:
            with held():  # a stop waits for the trial to have started, to end it (below)
                proc = self.launcher.start(out, out / "trial.log", env, spec.devices)
            while proc.poll() is None:
                if beat is not None and beat.lost:  # another worker now owns the trial
                    proc.kill()
                    proc.wait()
                    break
                try:
                    proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            # The worker is going down (an error, Ctrl-C, SIGTERM): its trial goes with it, as
            # it would if the worker were killed; Worker.run hands it to its retry.
            if proc is not None:
                proc.kill()
                proc.wait()
            raise
        return out, proc.returncode, time.time() - t0

    def interrupt(self, trial: optuna.Trial, why: str) -> None:
        """End a trial that was stopped from outside: FAIL with ``interrupted`` (not a result)
        and its retry enqueued now (:func:`retry_now`)."""
        try:
            with held(), study_lock(self.storage, self.name):
                trial.set_user_attr(INTERRUPTED, f"{why}: not a result, to be run again")
                self.study.tell(trial, state=TrialState.FAIL)
                retry_now(self.study, self.storage, trial._trial_id)  # noqa: SLF001
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # already failed as stale, and retried, by another worker

    def finish(self, trial: optuna.Trial, out: Path, code: int, wall: float) -> None:
        with held():  # a stop now waits until the trial's end is recorded
            self._finish(trial, out, code, wall)

    def _finish(self, trial: optuna.Trial, out: Path, code: int, wall: float) -> None:
        trial.set_user_attr("trial_wall_s", round(wall, 1))
        why = interruption(code)
        if why is not None:
            self.interrupt(trial, f"the trial was {why}")
            return
        result_path = out / "result.json"
        if code == 0 and result_path.is_file():
            result = json.loads(result_path.read_text())
            for key in (
                "dev_bleu",
                "test_bleu",
                "dev_loss",
                "params",
                "steps",
                "wall_s",
                "train_wall_s",
                "data_hash",
                "tokenizer_hash",
                "checkpoint",
                "resumed_from",
                "bleu_signature",
                "dev_bleu_paper",
                "test_bleu_paper",
                "bleu_paper_signature",
                "git_commit",
                "status",
                "dev_hypotheses",
                "precision",
                "dev_curve",
            ):
                if result.get(key) is not None:
                    trial.set_user_attr(key, result[key])
            if result.get("status") == "pruned":
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                trial.set_user_attr("dev_ppl", result["dev_ppl"])
                self.study.tell(trial, result["dev_ppl"])
            return
        failure = out / FAILURE_FILE
        if failure.is_file():
            reason = json.loads(failure.read_text())["reason"]
        else:
            # The last line of this attempt's output, not the attempt line or an earlier try's.
            lines = current_attempt((out / "trial.log").read_text(errors="replace").strip())
            reason = f"exit code {code}: {lines[-1] if lines else 'no output'}"
        trial.set_user_attr("fail_reason", reason[:500])
        self.study.tell(trial, state=TrialState.FAIL)
