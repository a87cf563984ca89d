"""``fit``: train one configuration (an ablation row, ``--config`` files, dotted options).

The configuration is composed in layers, each on top of the last: the dataclass defaults; the
ablation file's defaults and the row's changes; each ``--config`` file in order; the dotted
options (``--model.heads 4``, listed with their types and defaults by ``fit --help``).
``--print-config`` prints the result as YAML and exits.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lit_transformer.cli.options import add_config_options, config_overrides
from lit_transformer.config import ConfigError, RunConfig, deep_merge, load_config_files

SUMMARY = "train one configuration (an ablation row or --config YAML files)"

# Spellings of earlier releases: each knob has one spelling now, its config option.
RENAMED = {
    "--max-steps": "--trainer.max_steps",
    "--max-minutes": "--trainer.max_minutes",
    "--devices": "--trainer.devices",
    "--num-nodes": "--trainer.num_nodes",
    "--precision": "--trainer.precision",
    "--wandb": "--trainer.wandb",
    "--data-root": "--data.data_root",
    "--beam": "--decode.beam",
    "--alpha": "--decode.alpha",
}


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.usage = (
        "%(prog)s [--ablation FILE --row ROW] [--config FILE ...] [--seed N] [--out DIR]\n"
        "       [--SECTION.OPTION VALUE ...] [--print-config]"
    )
    p.add_argument("--ablation", metavar="FILE", help="ablation YAML (with --row)")
    p.add_argument("--row", help="row id in the ablation file, e.g. base, A-h1")
    p.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="run config YAML (model/data/optim/trainer/decode sections); repeat to compose",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="output directory (result.json, checkpoints)")
    p.add_argument("--group", help="W&B group (default: trainer.wandb_group)")
    p.add_argument("--no-test", action="store_true", help="skip the test-set evaluation")
    p.add_argument("--job-type", default="train", help="W&B job type")
    p.add_argument(
        "--print-config", action="store_true", help="print the merged config as YAML and exit"
    )
    for old in RENAMED:
        p.add_argument(old, dest=f"renamed:{old}", nargs="?", const="", help=argparse.SUPPRESS)
    add_config_options(p)


def build_config(args: argparse.Namespace) -> RunConfig:
    """Defaults ⊕ ablation row ⊕ ``--config`` files in order ⊕ dotted options."""
    for old, new in RENAMED.items():
        if getattr(args, f"renamed:{old}", None) is not None:
            raise ConfigError(f"{old} is spelled {new} (one spelling per knob)")
    merged: dict[str, Any] = deep_merge(load_config_files(args.config), config_overrides(args))
    if args.ablation:
        if not args.row:
            raise ConfigError("--ablation needs --row")
        from lit_transformer.ablation import load_ablation

        return load_ablation(args.ablation).row_config(args.row, merged)
    if args.row:
        raise ConfigError("--row needs --ablation")
    return RunConfig.from_dict(merged)


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    if not args.out:
        raise ConfigError("fit needs --out DIR")
    tr = cfg.trainer
    if tr.max_steps < 0 and not tr.max_minutes and tr.max_epochs is None:
        raise ConfigError(
            "fit needs a budget: --trainer.max_steps N, --trainer.max_minutes M or "
            "--trainer.max_epochs E"
        )
    from lit_transformer.provenance import is_rank_zero
    from lit_transformer.training.run import RunSpec
    from lit_transformer.training.trial import fit_or_fail, summary

    spec = RunSpec(
        config=cfg,
        out_dir=Path(args.out),
        seed=args.seed,
        row=args.row,
        ablation=args.ablation,
        group=args.group,
        test=not args.no_test,
        job_type=args.job_type,
    )
    code, result = fit_or_fail(spec)
    if result is not None and is_rank_zero():
        print(summary(result))
    return code
