"""Table 3 replica: our numbers beside the paper's, row by row, from an Optuna study.

Per row (in the ablation file's order): what it changes; params (ours, paper); dev PPL mean ±
std over seeds with n; Δ PPL vs base (ours, paper); BLEU likewise; whether our direction
agrees with the paper's (raw sign of the mean paired difference, ``agree_*``) and the
noise-aware verdict (``verdict_*``, from the mean and 95% t interval of the per-seed paired
differences to base, see
:mod:`lit_transformer.report.stats`); the significance of our BLEU difference to base
(sacreBLEU's paired bootstrap resampling on the dev hypotheses of matching seeds); steps and
wall time; paper-style dev BLEU (``bleu_paper``, :func:`lit_transformer.bleu.paper_bleu`)
where trials scored it. Rows that are missing, running or failed stay in the table with their
state and reason. :func:`summary` adds verdict counts and Spearman's ρ of our row values with
the paper's, overall and per group.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from lit_transformer.ablation import Ablation
from lit_transformer.config import ConfigError
from lit_transformer.report.stats import (
    PAPER_DECIMALS,
    VERDICTS,
    mean_interval,
    paired_differences,
    spearman,
    verdict,
)
from lit_transformer.sweep.status import STATE_RANK, all_params

SIGNIFICANCE_LEVEL = 0.05
BOOTSTRAP_SAMPLES = 1000
METRICS = ("ppl", "bleu")
# A trial's paper-style dev BLEU and its signature (result.json, decode.paper_bleu).
PAPER_KEY, PAPER_SIG = "dev_bleu_paper", "bleu_paper_signature"
# Groups with a rank correlation of their own (each with the base row, the centre of its sweep).
CORRELATION_GROUPS = ("A", "B", "C", "D", "E")


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
    protocol: str | None = None  # the trial's own record (None: a trial from before it)
    dev_bleu_paper: float | None = None  # runs with decode.paper_bleu only
    paper_signature: str | None = None
    dev_curve: list | None = None  # [step, ppl, bleu] per validation, as the study recorded it


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
            reason=ua.get("fail_reason") or ua.get("interrupted", ""),
            protocol=ua.get("protocol"),
            dev_curve=ua.get("dev_curve"),
        )
        if t.state == TrialState.COMPLETE:
            paper = paper_bleu_of(ua)
            rec.dev_bleu_paper, rec.paper_signature = paper.get(PAPER_KEY), paper.get(PAPER_SIG)
        key = (rec.row, rec.seed)
        r = STATE_RANK.get(t.state, 0)
        if key not in best or r > best[key][0]:
            best[key] = (r, rec)
    return [rec for _, rec in best.values()]


def paper_bleu_of(attrs: dict[str, Any]) -> dict[str, Any]:
    """A trial's paper-style dev BLEU and its signature: from its user attributes, else from
    its ``result.json`` (trials whose attributes do not carry them); {} when it has none."""
    if attrs.get(PAPER_KEY) is not None:
        return {k: attrs.get(k) for k in (PAPER_KEY, PAPER_SIG)}
    path = Path(attrs["out_dir"]) / "result.json" if attrs.get("out_dir") else None
    try:
        result = json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    return {k: result[k] for k in (PAPER_KEY, PAPER_SIG) if result.get(k) is not None}


def recorded_protocol(attrs: dict[str, Any]) -> str:
    """A study's protocol: its ``protocol`` attribute, else derived from its recorded budget,
    else from its spec file (studies from before either was recorded); ``"?"`` if none says."""
    from lit_transformer.sweep.spec import budget_protocol, load_spec

    if attrs.get("protocol"):
        return str(attrs["protocol"])
    budget = attrs.get("budget")
    if budget is not None:
        counted = attrs.get("budget_counts_validation", True)
        return budget_protocol(budget, {"trainer": {"budget_counts_validation": counted}})
    if attrs.get("spec"):
        try:
            return load_spec(attrs["spec"]).protocol
        except (ConfigError, OSError):
            pass
    return "?"


def study_protocol(study: optuna.Study) -> str:
    """The one protocol of a study's trials (a trial without its own ``protocol`` attribute
    has the study's). Raises ConfigError if they differ: one column never averages different
    protocols."""
    default = recorded_protocol(study.user_attrs)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if "row" in all_params(t):
            p = str(t.user_attrs.get("protocol") or default)
            counts[p] = counts.get(p, 0) + 1
    if len(counts) > 1 or (counts and default not in counts and default != "?"):
        found = ", ".join(
            f"{p}: {n} trial" + ("s" if n != 1 else "") for p, n in sorted(counts.items())
        )
        raise ConfigError(
            f"study '{study.study_name}' mixes protocols (study: {default}; {found}): a report "
            "never averages different protocols in one column, report each protocol's study"
        )
    return next(iter(counts)) if counts else default


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
        paper = [r.dev_bleu_paper for r in done if r.dev_bleu_paper is not None]
        paper_m, paper_s = _mean_std(paper)
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
                "bleu_paper": paper_m,
                "bleu_paper_std": paper_s,
                "bleu_paper_n": len(paper),
            }
        )
    frame = pd.DataFrame(rows)
    if not frame["bleu_paper_n"].any():  # no trial scored it: the table stays as it was
        frame = frame.drop(columns=["bleu_paper", "bleu_paper_std", "bleu_paper_n"])
    base = frame[frame["row"] == "base"].iloc[0] if (frame["row"] == "base").any() else None
    for metric in ("ppl", "bleu"):
        ours = frame[metric] - (base[metric] if base is not None else float("nan"))
        paper = frame[f"paper_{metric}"] - (base[f"paper_{metric}"] if base is not None else 0)
        frame[f"d_{metric}"] = ours.where(frame[metric].notna())
        frame[f"paper_d_{metric}"] = paper
    _add_verdicts(frame, records)
    for metric in METRICS:
        # The paired mean's sign (none without a seed both have): a difference of means compares
        # different seed sets while base is a seed ahead, so one outlying seed can flip it.
        ours = frame[f"d_{metric}_paired"]
        frame[f"agree_{metric}"] = [
            "" if r == "base" else _agree(o if pd.notna(o) else None, p if pd.notna(p) else None)
            for r, o, p in zip(frame["row"], ours, frame[f"paper_d_{metric}"], strict=True)
        ]
    frame["significant"] = frame["p_value"].map(
        lambda p: "" if pd.isna(p) else ("yes" if p < SIGNIFICANCE_LEVEL else "no")
    )
    return frame


def _by_seed(records: list[TrialRecord], row: str, metric: str) -> dict[int, float]:
    """A row's completed value of ``metric`` per seed."""
    attr = f"dev_{metric}"
    return {
        r.seed: float(getattr(r, attr))
        for r in records
        if r.row == row and r.state == "COMPLETE" and getattr(r, attr) is not None
    }


def _add_verdicts(frame: pd.DataFrame, records: list[TrialRecord]) -> None:
    """Per metric m: ``d_m_n`` (seeds paired with base), ``d_m_paired`` (mean of the paired
    differences row_s − base_s), ``d_m_low``/``d_m_high`` (its 95% t interval) and
    ``verdict_m`` (:func:`~lit_transformer.report.stats.verdict`); base rows get none."""
    for metric in METRICS:
        base = _by_seed(records, "base", metric)
        cols: dict[str, list[Any]] = {k: [] for k in ("n", "paired", "low", "high", "verdict")}
        for row, paper_d in zip(frame["row"], frame[f"paper_d_{metric}"], strict=True):
            if row == "base":
                iv, text = mean_interval([]), ""
            else:
                iv = mean_interval(paired_differences(_by_seed(records, row, metric), base))
                paper = None if pd.isna(paper_d) else float(paper_d)
                text = verdict(iv, paper, PAPER_DECIMALS[metric])
            cols["n"].append(iv.n)
            cols["paired"].append(iv.mean)
            cols["low"].append(iv.low)
            cols["high"].append(iv.high)
            cols["verdict"].append(text)
        frame[f"d_{metric}_n"] = cols["n"]
        for key in ("paired", "low", "high"):
            frame[f"d_{metric}_{key}"] = [math.nan if v is None else v for v in cols[key]]
        frame[f"verdict_{metric}"] = cols["verdict"]


def correlations(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Spearman's ρ of our row means with the paper's figures, per metric: ``"all"`` rows with
    both numbers, and each of :data:`CORRELATION_GROUPS` with the base row. Each entry is
    ``{"rho", "p", "n"}`` (ρ None for n < 2, p None for n < 3)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in METRICS:
        both = frame[frame[metric].notna() & frame[f"paper_{metric}"].notna()]
        scopes = {"all": both}
        for g in CORRELATION_GROUPS:
            if (frame["group"] == g).any():
                scopes[g] = both[both["group"].isin([g, "base"])]
        out[metric] = {}
        for name, part in scopes.items():
            x = [float(v) for v in part[metric]]
            y = [float(v) for v in part[f"paper_{metric}"]]
            rho, p = spearman(x, y)
            out[metric][name] = {"rho": rho, "p": p, "n": len(x)}
    return out


def group_verdicts(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Per group (ablation order, base excluded) and metric: the rows under each verdict."""
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for group in dict.fromkeys(frame["group"]):
        if group == "base":
            continue
        part = frame[frame["group"] == group]
        out[group] = {
            m: {v: part.loc[part[f"verdict_{m}"] == v, "row"].tolist() for v in VERDICTS}
            for m in METRICS
        }
    return out


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Counts for the report's summary: raw direction agreement (``agree_m``/``judged_m``),
    verdict counts (``verdicts_m``), per-group verdicts (``groups``), Spearman's ρ
    (``spearman``), significant and complete rows."""
    rows = frame[frame["row"] != "base"]
    out: dict[str, Any] = {}
    for metric in METRICS:
        judged = rows[rows[f"agree_{metric}"].isin(["yes", "no"])]
        out[f"agree_{metric}"] = int((judged[f"agree_{metric}"] == "yes").sum())
        out[f"judged_{metric}"] = int(len(judged))
        out[f"verdicts_{metric}"] = {
            v: int((rows[f"verdict_{metric}"] == v).sum()) for v in VERDICTS
        }
    out["groups"] = group_verdicts(frame)
    out["spearman"] = correlations(frame)
    out["significant_rows"] = rows.loc[rows["significant"] == "yes", "row"].tolist()
    out["complete_rows"] = int((frame["status"] == "ok").sum())
    out["rows"] = int(len(frame))
    out["not_ok"] = {r: s for r, s in zip(frame["row"], frame["status"], strict=True) if s != "ok"}
    return out
