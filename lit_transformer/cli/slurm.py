"""``slurm trial|sweep``: write an sbatch script (README, "Clusters"; ``slurm.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SUMMARY = "write an sbatch script: one DDP trial over nodes, or a sweep as a job array"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    kinds = p.add_subparsers(dest="kind", required=True, parser_class=type(p))
    trial = kinds.add_parser("trial", help="one DDP trial over --nodes x --devices")
    trial.usage = "%(prog)s --out DIR [--nodes N] [--devices G] [SLURM options] -- FIT ARGUMENTS"
    trial.add_argument("--out", required=True, help="the trial's directory (every node sees it)")
    trial.add_argument("--nodes", type=_positive, default=1, help="nodes of the DDP job")
    trial.add_argument("--devices", type=_positive, default=1, help="GPUs (tasks) per node")
    sweep = kinds.add_parser("sweep", help="a job array of sweep workers on one PostgreSQL study")
    sweep.add_argument("spec", help="the study spec, e.g. sweeps/table3-paper.yaml")
    sweep.add_argument("--workers", type=_positive, default=4, help="array tasks (workers)")
    sweep.add_argument("--devices", type=_positive, help="GPUs per worker (default: the spec's)")
    sweep.add_argument("--storage", help="postgresql:// URL without its password (~/.pgpass)")
    sweep.add_argument("--study-name", help="study name (default: the spec's)")
    sweep.add_argument("--seeds", help="comma-separated seeds instead of the spec's")
    sweep.add_argument("--run-dir", default="runs/sweeps", help="trial directories (shared)")
    for q in (trial, sweep):
        q.add_argument("--accelerator", choices=["gpu", "cpu"], default="gpu")
        q.add_argument("--job-name", help="SLURM job name (default: lit-ROW or lit-STUDY)")
        q.add_argument("--time", help="SLURM time limit, e.g. 3-12:00:00")
        q.add_argument("--partition")
        q.add_argument("--account")
        q.add_argument("--cpus-per-task", type=_positive)
        q.add_argument(
            "--setup",
            action="append",
            default=[],
            metavar="LINE",
            help="a shell line run before srun, e.g. 'source .venv/bin/activate' (repeatable)",
        )
        q.add_argument("-o", "--output", help="write the script here (default: standard output)")
    trial.add_argument("fit_args", nargs=argparse.REMAINDER, help="fit's arguments, after --")


def run(args: argparse.Namespace) -> int:
    from lit_transformer.config import ConfigError
    from lit_transformer.provenance import git_commit, write_text_atomic
    from lit_transformer.slurm import sweep_script, trial_script

    fit_args = getattr(args, "fit_args", [])
    fit_args = fit_args[1:] if fit_args[:1] == ["--"] else fit_args
    written_by = f"lit-transformer slurm {args.kind}, at commit {git_commit()}"
    if args.kind == "trial":
        if not fit_args:
            raise ConfigError("slurm trial takes fit's arguments after --, e.g. -- --row base")
        row = fit_args[fit_args.index("--row") + 1] if "--row" in fit_args[:-1] else "trial"
        alloc = _allocation(args, args.job_name or f"lit-{row}", args.nodes, args.devices)
        text = trial_script(alloc, fit_args, args.out, written_by)
        Path(args.out).mkdir(parents=True, exist_ok=True)  # sbatch's --output needs it
    else:
        from lit_transformer.cli.sweep import _int_list
        from lit_transformer.sweep.spec import load_spec

        spec = load_spec(args.spec)
        name = args.study_name or spec.study
        devices = args.devices or spec.devices
        alloc = _allocation(args, args.job_name or f"lit-{name}", 1, devices)  # one node a worker
        seeds = _int_list(args.seeds) if args.seeds else None
        text = sweep_script(
            alloc,
            args.spec,
            args.workers,
            args.run_dir,
            written_by,
            args.storage,
            args.study_name,
            seeds,
        )
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    if args.output:
        write_text_atomic(text, Path(args.output))
        print(f"wrote {args.output}: submit it with `sbatch {args.output}`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _allocation(args: argparse.Namespace, job_name: str, nodes: int, devices: int):
    from lit_transformer.slurm import Allocation

    return Allocation(
        job_name=job_name,
        nodes=nodes,
        devices=devices,
        accelerator=args.accelerator,
        cpus_per_task=args.cpus_per_task,
        time=args.time,
        partition=args.partition,
        account=args.account,
        setup=list(args.setup),
    )
