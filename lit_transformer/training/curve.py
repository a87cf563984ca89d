"""A run's dev curve, from the CSV logger's ``metrics.csv``, as ``result.json`` records it.

The curve travels with the study (a trial's ``dev_curve`` user attribute), so a report made on
another machine, where the trial's run directory is not, still draws it. Plain ``csv``: the
report and the sweep worker read it without importing Lightning."""

from __future__ import annotations

import csv
from pathlib import Path

Curve = list[list[float | None]]


def dev_curve(csv_dir: Path) -> Curve:
    """``[step, ppl, bleu]`` per validation in ``csv_dir/metrics.csv``, by step (``bleu`` None
    where the run logged no ``val/bleu``; a step validated twice keeps its last
    PPL, and its last BLEU where the last validation decoded none); [] when the
    file is missing or holds no validation.

    ``step`` is the optimizer steps the model had trained: Lightning validates before it counts
    the step that triggered validation, so its CSV row carries ``step − 1``."""
    path = csv_dir / "metrics.csv"
    if not path.is_file():
        return []
    by_step: dict[int, list[float | None]] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if not r.get("val/ppl") or not r.get("step"):
                continue
            bleu = r.get("val/bleu")
            step = int(r["step"]) + 1
            before = by_step.get(step, [step, None, None])
            by_step[step] = [step, float(r["val/ppl"]), float(bleu) if bleu else before[2]]
    return [by_step[s] for s in sorted(by_step)]
