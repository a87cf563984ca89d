"""Starting a sweep: the spec, the storage, how many workers, the command recorded with the study.

One worker runs in this process; several are each their own process (a crash takes one
worker, not the sweep), started as ``lit-transformer sweep SPEC --workers 1 --child``, with the
storage URL in the environment so that a password never shows in ``ps``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lit_transformer.config import ConfigError
from lit_transformer.errors import Terminated
from lit_transformer.sweep.stop import held, stops_raise

if TYPE_CHECKING:
    from lit_transformer.sweep.spec import SweepSpec


@dataclass
class SweepOptions:
    spec: str
    storage: str | None = None
    study_name: str | None = None
    workers: int | None = None
    devices: int | None = None
    seeds: list[int] | None = None
    run_dir: str = "runs/sweeps"
    wandb: str = "offline"
    status: bool = False
    threads: int | None = None
    child: bool = False  # a worker process started by a multi-worker sweep
    plan: bool = False  # print the trials and their cost, run nothing (sweep/plan.py)
    tokens_per_s: float | None = None  # the plan's target tokens/s per device
    bench: str | None = None  # or a result file of gpu-check / bench train holding it


def sweep_command(o: SweepOptions, redacted_url: str) -> str:
    """The user's sweep command line, as recorded with the study (password redacted)."""
    parts = ["lit-transformer", "sweep", str(o.spec)]
    if o.seeds:
        parts += ["--seeds", ",".join(map(str, o.seeds))]
    for flag, value in (
        ("--storage", redacted_url if o.storage else None),
        ("--study-name", o.study_name),
        ("--workers", o.workers),
        ("--devices", o.devices),
        ("--run-dir", o.run_dir if o.run_dir != "runs/sweeps" else None),
    ):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(parts)


def worker_command(o: SweepOptions, name: str, threads: int) -> list[str]:
    cmd = [sys.executable, "-m", "lit_transformer", "sweep", str(o.spec), "--workers", "1"]
    cmd += ["--study-name", name, "--run-dir", str(o.run_dir), "--wandb", o.wandb]
    cmd += ["--threads", str(threads), "--child"]
    if o.devices:
        cmd += ["--devices", str(o.devices)]
    if o.seeds:
        cmd += ["--seeds", ",".join(map(str, o.seeds))]
    return cmd


def placement(spec, workers: int) -> list[str | None]:
    """Each worker's GPUs (``sweep/gpus.py``); none where the trials run on the CPU."""
    from lit_transformer.sweep.gpus import host_gpus, worker_gpus
    from lit_transformer.sweep.orchestrator import requested_precision

    if requested_precision(spec)[1] == "cpu":
        return [None] * workers
    return worker_gpus(workers, spec.devices, host_gpus())


def load_for(o: SweepOptions) -> SweepSpec:
    """The spec with the command line's ``--devices`` and ``--seeds`` in place of its own."""
    from lit_transformer.sweep.spec import load_spec

    spec = load_spec(o.spec)
    if o.devices:
        spec.devices = o.devices
    if o.seeds:
        spec.seeds = o.seeds
    return spec


def print_plan(o: SweepOptions) -> int:
    """``--plan``: the trials and what they cost, with no storage, data or torch."""
    from lit_transformer.sweep.plan import format_plan, plan_study

    spec = load_for(o)
    print(format_plan(plan_study(spec, o.study_name, o.tokens_per_s, o.bench)))
    return 0


def check_data(spec: SweepSpec) -> None:
    """Find each row's data files (train, dev and test, as a trial reads them) before any
    trial is claimed: a missing data root is then one line here, not a FAILed trial per
    row × seed. Trials run in this directory with this environment, so they resolve the data
    root as this does."""
    from lit_transformer.data.corpora import (
        get_corpus,
        has_test,
        resolve_data_root,
        split_parts,
        with_files,
    )

    seen = set()
    for row in spec.rows:
        d = spec.ablation.row_config(row, spec.trial_overrides({"row": row})).data
        key = (d.data_root, d.corpus, d.train, d.dev, d.test, d.src_lang, d.tgt_lang)
        if key not in seen:
            seen.add(key)
            corpus = with_files(get_corpus(d.corpus), d.train, d.dev, d.test)
            for role in ("train", "dev", "test")[: 2 + has_test(corpus)]:  # as the trial reads
                split_parts(resolve_data_root(d.data_root), corpus, role, d.src_lang, d.tgt_lang)


def run_workers(cmd: list[str], env: dict[str, str], gpus: list[str | None]) -> list[int]:
    """Start one worker process per entry of ``gpus`` and return their exit codes. Stopped
    meanwhile (``sweep/stop.py``), this process passes SIGTERM on to the workers (one that
    had the stop already ignores it) and waits while they tell the study that their trials
    were stopped, then stops too."""
    procs: list[subprocess.Popen] = []
    try:
        for g in gpus:
            with held():  # a stop waits until the worker is in `procs`, to pass it on
                procs.append(
                    subprocess.Popen(
                        cmd, env=env if g is None else {**env, "CUDA_VISIBLE_DEVICES": g}
                    )
                )
        return [p.wait() for p in procs]
    except (KeyboardInterrupt, Terminated):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise


def run_sweep(o: SweepOptions) -> int:
    """Run the study's trials until none is left, then print its rows × seeds table."""
    if o.plan:
        return print_plan(o)
    if o.tokens_per_s is not None or o.bench is not None:
        raise ConfigError("--tokens-per-s and --bench go with --plan")
    from lit_transformer.sweep.orchestrator import Worker, default_workers, record_provenance
    from lit_transformer.sweep.status import format_status, status_table
    from lit_transformer.sweep.storage import (
        STORAGE_ENV,
        default_storage,
        load_or_create_study,
        open_storage,
        redact,
    )

    spec = load_for(o)
    name = o.study_name or spec.study
    run_dir = Path(o.run_dir)
    url = o.storage or os.environ.get(STORAGE_ENV) or default_storage(run_dir, name)
    if o.status:
        study = load_or_create_study(open_storage(url), name)
        print(format_status(status_table(study), name))
        return 0
    for flag, value in (("--workers", o.workers), ("--threads", o.threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be a positive integer, got {value}")
    check_data(spec)
    workers = o.workers or default_workers(spec.devices, spec.protocol)
    threads = o.threads or max(1, (os.cpu_count() or 1) // (workers * spec.devices))
    gpus = placement(spec, workers) if workers > 1 else [None]  # before any study exists
    shown_url = redact(url)
    print(
        f"sweep {name}: {spec.kind}, storage {shown_url}, {workers} worker(s) × {threads} "
        "thread(s)",
        flush=True,
    )
    command = None if o.child else sweep_command(o, shown_url)
    if workers == 1:
        with stops_raise():  # `kill` stops a worker as Ctrl-C does: it tells the study first
            Worker(spec, url, name, run_dir, threads, o.wandb, command).run()
    else:
        # Create the schema and the study once, before the workers race to do it.
        study = load_or_create_study(open_storage(url, spec.max_retry), name)
        if command:
            record_provenance(study, spec, command)
        env = {**os.environ, STORAGE_ENV: url}
        with stops_raise():
            codes = run_workers(worker_command(o, name, threads), env, gpus)
        if any(codes):
            print(f"error: worker exit codes {codes}", file=sys.stderr)
            return 1
    study = load_or_create_study(open_storage(url), name)
    print(format_status(status_table(study), name))
    return 0
