"""``compare DIR…``: several runs' results side by side in the terminal, no dashboard needed.

Each DIR is a run's directory (it holds ``result.json``, as ``fit --out DIR`` and every sweep
trial write) or a folder above runs, such as a study's ``runs/sweeps/STUDY``, searched for
them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SUMMARY = "a terminal table of several runs' results (row, seed, params, steps, PPL, BLEU, time)"

COLUMNS = (  # (header, result key, format)
    ("row", "row", "{}"),
    ("seed", "seed", "{}"),
    ("params", "params", "{:,}"),
    ("steps", "steps", "{:,}"),
    ("dev PPL", "dev_ppl", "{:.2f}"),
    ("dev BLEU", "dev_bleu", "{:.2f}"),
    ("test BLEU", "test_bleu", "{:.2f}"),
    ("train s", "train_wall_s", "{:.0f}"),
    ("wall s", "wall_s", "{:.0f}"),
    ("precision", "precision", "{}"),
)


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run directories, or folders of them")
    p.add_argument("--sort", default="row", help="sort by this column's result key (default row)")
    p.add_argument("--json", action="store_true", help="the rows as JSON")


def find_results(dirs: list[str]) -> list[Path]:
    from lit_transformer.config import ConfigError

    found: list[Path] = []
    for d in map(Path, dirs):
        if (d / "result.json").is_file():
            found.append(d / "result.json")
        elif d.is_dir():
            found += sorted(d.rglob("result.json"))
        else:
            raise ConfigError(f"{d}: no such directory")
    if not found:
        raise ConfigError(f"no result.json under {', '.join(dirs)}: no finished run there")
    return found


def _cell(result: dict[str, Any], key: str, fmt: str) -> str:
    value = result.get(key)
    return "-" if value is None else fmt.format(value)


def run(args: argparse.Namespace) -> int:
    from lit_transformer.config import ConfigError

    rows = []
    for path in find_results(args.dirs):
        result = json.loads(path.read_text())
        result["dir"] = str(path.parent)
        rows.append(result)
    keys = {key for _, key, _ in COLUMNS} | {"dir"}
    if args.sort not in keys:
        raise ConfigError(f"--sort must be one of {', '.join(sorted(keys))}, got {args.sort!r}")
    rows.sort(key=lambda r: (r.get(args.sort) is None, r.get(args.sort) or 0, r.get("seed") or 0))
    if args.json:
        print(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=2))
        return 0
    table = [[h for h, _, _ in COLUMNS] + ["dir"]]
    table += [[_cell(r, k, f) for _, k, f in COLUMNS] + [r["dir"]] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = [
            c.ljust(w) if i in (0, len(line) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    return 0
