"""``lit-transformer report``: the Table 3 replica from a study (no W&B needed to read it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from lit_transformer.ablation import load_ablation
from lit_transformer.config import ConfigError
from lit_transformer.report.render import log_to_wandb, write_all
from lit_transformer.report.table import build_table, summary, trial_records


def _dev_refs(ablation) -> list[str] | None:
    from lit_transformer.data.corpora import DataError, load_split, resolve_data_root

    cfg = ablation.row_config(ablation.rows[0].id)
    d = cfg.data
    try:
        _, refs = load_split(
            resolve_data_root(d.data_root), d.corpus, "dev", d.src_lang, d.tgt_lang
        )
    except DataError:
        return None
    return refs[: d.max_eval_sentences] if d.max_eval_sentences else refs


def _curves(study: optuna.Study) -> dict[str, pd.DataFrame]:
    """Dev PPL by step for each row (its lowest seed), from the trials' CSV logs."""
    out: dict[str, pd.DataFrame] = {}
    for rec in sorted(trial_records(study), key=lambda r: (r.row, r.seed)):
        if rec.row in out or rec.state != "COMPLETE" or not rec.out_dir:
            continue
        path = Path(rec.out_dir) / "csv" / "metrics.csv"
        if path.is_file():
            m = pd.read_csv(path)
            if "val/ppl" in m:
                curve = m.dropna(subset=["val/ppl"])[["step", "val/ppl"]]
                out[rec.row] = curve.rename(columns={"val/ppl": "ppl"})
    return out


def _budget(attrs: dict[str, Any]) -> str:
    """The per-trial budget the sweep recorded (older studies: read from their spec file)."""
    budget = attrs.get("budget")
    if budget is None and attrs.get("spec"):
        try:
            from lit_transformer.sweep.spec import load_spec

            budget = load_spec(attrs["spec"]).budget
        except (ConfigError, OSError):
            return "?"
    if not budget:
        return "each row's own trainer.max_steps" if budget == {} else "?"
    # Studies from before the option existed ran on Lightning's max_time: validation counted.
    counted = attrs.get("budget_counts_validation", True) is not False
    minutes = "{} min of training" + (
        " (periodic validation included)" if counted else " (validation not counted)"
    )
    if "steps" in budget:
        scaled = ", ".join(f"{r} ×{m:g}" for r, m in (budget.get("row_scale") or {}).items())
        return f"{budget['steps']} optimizer steps per row" + (f" ({scaled})" if scaled else "")
    if "minutes" in budget:
        return f"{budget['minutes']} min of training steps per row (validation not counted)"
    parts = {"max_minutes": minutes, "max_steps": "{} steps"}
    text = " or ".join(parts[k].format(v) for k, v in budget.items())
    return text + (", whichever ends first" if len(budget) > 1 else "")


def _protocol(attrs: dict[str, Any]) -> str:
    """The protocol of a study from before it was recorded, from its budget."""
    from lit_transformer.sweep.spec import budget_protocol

    budget = attrs.get("budget")
    if budget is None:
        return "?"
    counted = attrs.get("budget_counts_validation", True)
    return budget_protocol(budget, {"trainer": {"budget_counts_validation": counted}})


def _precision(attrs: dict, study: optuna.Study) -> str:
    """The study's pinned precision; a study from before pinning names what its trials ran."""
    if attrs.get("precision"):
        return f"{attrs['precision']} (pinned by the study: {attrs.get('precision_reason', '?')})"
    ran = {t.user_attrs.get("precision") for t in study.trials} - {None}
    return ", ".join(sorted(ran)) if ran else "not recorded (a study from before pinning)"


def make_report(
    storage: str,
    study_name: str,
    out: Path,
    ablation_path: str | None = None,
    wandb: str = "offline",
    notes: str | None = None,
) -> dict[str, Any]:
    """Write the report into ``out``; ``notes`` (Markdown) is added as the report's Notes."""
    from lit_transformer.sweep.storage import open_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ConfigError(f"no study named '{study_name}' in that storage") from None
    attrs = study.user_attrs
    path = ablation_path or attrs.get("ablation")
    if not path:
        raise ConfigError("the study does not name its ablation file: pass --ablation")
    if not ablation_path and not Path(path).is_file():
        # The study moved (a committed study file): the same file name in this checkout.
        moved = Path("ablations") / Path(path).name
        path = str(moved) if moved.is_file() else path
    ablation = load_ablation(path)
    refs = _dev_refs(ablation)
    frame = build_table(study, ablation, refs)
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    span = (
        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
        if trials
        else None
    )
    data = ablation.row_config(ablation.rows[0].id).data
    signatures = {t.user_attrs.get("bleu_signature") for t in study.trials} - {None}
    meta = {
        "study": study_name,
        "command": " ; then ".join(attrs.get("commands") or [attrs.get("command", "?")]),
        "scale": f"{ablation.scale or '?'}: {ablation.description}".rstrip(": "),
        "protocol": attrs.get("protocol") or _protocol(attrs),
        "budget per trial": _budget(attrs),
        "data": f"{data.corpus} {data.src_lang}→{data.tgt_lang}, dev PPL and BLEU on its dev split"
        + (f" ({len(refs)} sentences)" if refs else ""),
        "BLEU": "sacreBLEU " + (", ".join(sorted(signatures)) or "?"),
        "hardware": attrs.get("hardware", "?"),
        "precision": _precision(attrs, study),
        "wall time": f"{span.total_seconds() / 3600:.2f} h (first trial start to last end)"
        if span
        else "?",
        "caveat": "the paper's columns are its own figures (paper-scale models on WMT 2014 EN-DE, "
        "newstest2013, 100k steps); where scale or data differ, compare the direction of each "
        "row's change vs base, not absolute values",
    }
    s = summary(frame)
    written = write_all(frame, s, meta, _curves(study), out, notes)
    if wandb != "disabled":
        log_to_wandb(frame, [p for p in written if p.suffix == ".png"], study_name, out, wandb)
    return {"summary": s, "files": [str(p) for p in written]}
