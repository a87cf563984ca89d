"""``report``: the Table 3 replica from a study, beside the paper's figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from lit_transformer.config import ConfigError

SUMMARY = "Table 3 replica from a study: md, tex, csv, html, plots"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--storage", required=True, help="the study's storage URL")
    p.add_argument("--study", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ablation", help="ablation file (default: the one the study recorded)")
    p.add_argument("--notes", help="a Markdown file of notes/caveats to add to the report")
    p.add_argument(
        "--compare-study",
        help="a second study (another protocol, e.g. equal time) to put beside the first",
    )
    p.add_argument("--compare-storage", help="its storage URL (default: --storage)")
    p.add_argument("--wandb", choices=["online", "offline", "disabled"], default="offline")


def read_notes(path_text: str | None) -> str | None:
    if not path_text:
        return None
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"{path}: notes file not found")
    try:
        return path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: notes file is not UTF-8 text") from None


def run(args: argparse.Namespace) -> int:
    from lit_transformer.report import make_report

    notes = read_notes(args.notes)
    out = make_report(
        args.storage,
        args.study,
        Path(args.out),
        args.ablation,
        args.wandb,
        notes,
        compare_study=args.compare_study,
        compare_storage=args.compare_storage,
    )
    for label, s in ((args.study, out["summary"]), (args.compare_study, out["compare_summary"])):
        if s is not None:
            print(f"{label}: {summary_line(s)}")
    for line in out["holds"]:
        print(line)
    print(f"written: {', '.join(Path(f).name for f in out['files'])}")
    return 0


def summary_line(s: dict) -> str:
    """Rows complete, the verdict counts and the rank correlations with the paper's column."""
    parts = [f"{s['complete_rows']}/{s['rows']} rows complete"]
    for metric in ("ppl", "bleu"):
        counts = ", ".join(f"{v} {n}" for v, n in s[f"verdicts_{metric}"].items() if n)
        rho = s["spearman"][metric]["all"]
        corr = "ρ n/a" if rho["rho"] is None else f"Spearman ρ {rho['rho']:+.2f}"
        if rho.get("p") is not None:
            corr += f" (p {rho['p']:.2g}, n {rho['n']})"
        parts.append(f"{metric.upper()}: {counts or 'no verdicts'}; {corr}")
    return "; ".join(parts)
