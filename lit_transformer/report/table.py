"""Table 3 replica: our numbers beside the paper's, row by row, from an Optuna study.

Per row (in the ablation file's order): what it changes; params (ours, paper); dev PPL mean ±
std over seeds with n; Δ PPL vs base (ours, paper); BLEU likewise; whether our direction
agrees with the paper's; the significance of our BLEU difference to base (sacreBLEU's paired
bootstrap resampling on the dev hypotheses of matching seeds); steps and wall time. Rows that
are missing, running or failed stay in the table with their state and reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from lit_transformer.ablation import Ablation
from lit_transformer.sweep.status import STATE_RANK, all_params

SIGNIFICANCE_LEVEL = 0.05
BOOTSTRAP_SAMPLES = 1000


@dataclass
class TrialRecord:
    row: str
    seed: int
    state: str
    dev_ppl: float | None
    dev_bleu: float | None
    params: int | None
    steps: int | None
    wall_s: float | None
    hypotheses: str | None
    out_dir: str | None
    reason: str


def trial_records(study: optuna.Study) -> list[TrialRecord]:
    """One record per row × seed: the most advanced trial of that pair (retries collapse)."""
    best: dict[tuple[str, int], tuple[int, TrialRecord]] = {}
    for t in study.get_trials(deepcopy=False):
        params = all_params(t)
        if "row" not in params:
            continue
        ua = t.user_attrs
        rec = TrialRecord(
            row=str(params["row"]),
            seed=int(params.get("seed", 0)),
            state=t.state.name,
            dev_ppl=t.value if t.state == TrialState.COMPLETE else None,
            dev_bleu=ua.get("dev_bleu") if t.state == TrialState.COMPLETE else None,
            params=ua.get("params"),
            steps=ua.get("steps"),
            wall_s=ua.get("trial_wall_s"),
            hypotheses=ua.get("dev_hypotheses"),
            out_dir=ua.get("out_dir"),
            reason=ua.get("fail_reason", ""),
        )
        key = (rec.row, rec.seed)
        r = STATE_RANK.get(t.state, 0)
        if key not in best or r > best[key][0]:
            best[key] = (r, rec)
    return [rec for _, rec in best.values()]


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None  # one seed: no ± rather than a fake 0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _agree(ours: float | None, paper: float | None, tol: float = 1e-9) -> str:
    if ours is None or paper is None:
        return ""
    sign = lambda x: 0 if abs(x) <= tol else (1 if x > 0 else -1)  # noqa: E731
    if sign(paper) == 0:
        return "paper: no change"
    return "yes" if sign(ours) == sign(paper) else "no"


def paired_bootstrap(
    base_hyps: list[str], row_hyps: list[str], refs: list[str], n_samples: int = BOOTSTRAP_SAMPLES
) -> float:
    """p-value of the BLEU difference, by sacreBLEU's own paired bootstrap resampling."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    test = PairedTest(
        [("base", base_hyps), ("row", row_hyps)],
        {"BLEU": BLEU()},
        [refs],
        test_type="bs",
        n_samples=n_samples,
    )
    _, results = test()
    return float(results["BLEU"][1].p_value)


def _read_hyps(path: str | None) -> list[str] | None:
    if not path or not Path(path).is_file():
        return None
    return Path(path).read_text(encoding="utf-8").splitlines()


def significance(records: list[TrialRecord], row: str, refs: list[str] | None) -> float | None:
    """Paired bootstrap on the dev hypotheses of row vs base for each seed both have; the
    largest p-value over seeds (conservative: significant only if every seed is)."""
    if refs is None or row == "base":
        return None
    by_seed = {(r.row, r.seed): r for r in records if r.state == "COMPLETE"}
    pvalues = []
    for (name, seed), rec in by_seed.items():
        if name != row or ("base", seed) not in by_seed:
            continue
        a, b = _read_hyps(by_seed[("base", seed)].hypotheses), _read_hyps(rec.hypotheses)
        if a is None or b is None or len(a) != len(refs) or len(b) != len(refs):
            continue
        pvalues.append(paired_bootstrap(a, b, refs))
    return max(pvalues) if pvalues else None


def build_table(study: optuna.Study, ablation: Ablation, refs: list[str] | None) -> pd.DataFrame:
    records = trial_records(study)
    rows: list[dict[str, Any]] = []
    for arow in ablation.rows:
        recs = [r for r in records if r.row == arow.id]
        done = [r for r in recs if r.state == "COMPLETE"]
        ppl_m, ppl_s = _mean_std([r.dev_ppl for r in done if r.dev_ppl is not None])
        bleu_m, bleu_s = _mean_std([r.dev_bleu for r in done if r.dev_bleu is not None])
        states = sorted({r.state for r in recs})
        status = "missing" if not recs else ("ok" if done else "/".join(states).lower())
        reasons = "; ".join(sorted({r.reason for r in recs if r.reason}))
        rows.append(
            {
                "row": arow.id,
                "group": arow.group,
                "changes": arow.changes,
                "params": next((r.params for r in recs if r.params), None),
                "paper_params_m": arow.paper.get("params_millions"),
                "n": len(done),
                "ppl": ppl_m,
                "ppl_std": ppl_s,
                "paper_ppl": arow.paper.get("dev_ppl"),
                "bleu": bleu_m,
                "bleu_std": bleu_s,
                "paper_bleu": arow.paper.get("dev_bleu"),
                "steps": _mean_std([float(r.steps) for r in done if r.steps])[0],
                "wall_s": _mean_std([float(r.wall_s) for r in done if r.wall_s])[0],
                "status": status,
                "reason": reasons,
                "p_value": significance(records, arow.id, refs) if done else None,
            }
        )
    frame = pd.DataFrame(rows)
    base = frame[frame["row"] == "base"].iloc[0] if (frame["row"] == "base").any() else None
    for metric in ("ppl", "bleu"):
        ours = frame[metric] - (base[metric] if base is not None else float("nan"))
        paper = frame[f"paper_{metric}"] - (base[f"paper_{metric}"] if base is not None else 0)
        frame[f"d_{metric}"] = ours.where(frame[metric].notna())
        frame[f"paper_d_{metric}"] = paper
        frame[f"agree_{metric}"] = [
            "" if r == "base" else _agree(o if pd.notna(o) else None, p if pd.notna(p) else None)
            for r, o, p in zip(frame["row"], frame[f"d_{metric}"], paper, strict=True)
        ]
    frame["significant"] = frame["p_value"].map(
        lambda p: "" if pd.isna(p) else ("yes" if p < SIGNIFICANCE_LEVEL else "no")
    )
    return frame


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    rows = frame[frame["row"] != "base"]
    out: dict[str, Any] = {}
    for metric in ("ppl", "bleu"):
        judged = rows[rows[f"agree_{metric}"].isin(["yes", "no"])]
        out[f"agree_{metric}"] = int((judged[f"agree_{metric}"] == "yes").sum())
        out[f"judged_{metric}"] = int(len(judged))
    out["significant_rows"] = rows.loc[rows["significant"] == "yes", "row"].tolist()
    out["complete_rows"] = int((frame["status"] == "ok").sum())
    out["rows"] = int(len(frame))
    out["not_ok"] = {r: s for r, s in zip(frame["row"], frame["status"], strict=True) if s != "ok"}
    return out
