"""``params``: each ablation row's parameter count beside the paper's."""

from __future__ import annotations

import argparse
import json

from lit_transformer.config import ConfigError

SUMMARY = "parameter count of each ablation row, beside the paper's"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("file", help="ablation YAML, e.g. ablations/table3.yaml")
    p.add_argument("--vocab-size", type=int, required=True)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from lit_transformer.ablation import load_ablation
    from lit_transformer.ablation.params import ablation_params

    if args.vocab_size <= 0:
        raise ConfigError(f"--vocab-size must be positive, got {args.vocab_size}")
    rows = ablation_params(load_ablation(args.file), args.vocab_size)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'row':<16}{'params':>14}{'Δ base':>12}{'paper (M)':>11}{'paper Δ':>9}")
    for r in rows:
        paper = "" if r["paper_params_m"] is None else f"{r['paper_params_m']:g}"
        paper_d = "" if r["paper_delta_m"] is None else f"{r['paper_delta_m']:+g}"
        print(f"{r['row']:<16}{r['params']:>14,}{r['delta_m']:>+11.1f}M{paper:>11}{paper_d:>9}")
    return 0
