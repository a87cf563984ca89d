"""``lit-transformer report``: the Table 3 replica from a study (no W&B needed to read it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from lit_transformer.ablation import load_ablation
from lit_transformer.config import ConfigError
from lit_transformer.report.render import CURVES_FILE, holds_lines, log_to_wandb, write_all
from lit_transformer.report.table import (
    build_table,
    recorded_protocol,
    study_protocol,
    summary,
    trial_records,
)
from lit_transformer.training.curve import dev_curve


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


CURVE_COLUMNS = ["study", "row", "seed", "step", "ppl", "bleu"]


def kept_curves(out: Path | None, study_name: str) -> pd.DataFrame:
    """The curves an earlier report of ``study_name`` wrote to ``out/curves.csv``: what is left
    of trials whose run directories stayed on another machine and that predate ``dev_curve``."""
    path = out / CURVES_FILE if out else None
    if not (path and path.is_file()):
        return pd.DataFrame(columns=CURVE_COLUMNS)
    kept = pd.read_csv(path)
    return kept[kept["study"] == study_name] if set(CURVE_COLUMNS) <= set(kept) else kept.iloc[:0]


def learning_curves(study: optuna.Study, out: Path | None = None) -> pd.DataFrame:
    """Every completed trial's dev curve: one line per row × seed × validation step, columns
    ``study, row, seed, step, ppl, bleu`` (``bleu`` NaN where the trial logged no ``val/bleu``).

    Each trial's curve comes from its ``dev_curve`` user attribute (recorded with the study),
    else its run directory's ``csv/metrics.csv``, else the curves an earlier report kept in
    ``out/curves.csv``; a trial with none of them is left out."""
    kept = kept_curves(out, study.study_name)
    parts = []
    for rec in sorted(trial_records(study), key=lambda r: (r.row, r.seed)):
        if rec.state != "COMPLETE":
            continue
        curve = rec.dev_curve or (dev_curve(Path(rec.out_dir) / "csv") if rec.out_dir else [])
        if curve:
            part = pd.DataFrame(curve, columns=["step", "ppl", "bleu"])
        else:
            part = kept.loc[(kept["row"] == rec.row) & (kept["seed"] == rec.seed)]
            part = part[["step", "ppl", "bleu"]]
        if part.empty:
            continue
        part = part.assign(study=study.study_name, row=rec.row, seed=rec.seed)
        parts.append(part.astype({"step": int, "ppl": float, "bleu": float})[CURVE_COLUMNS])
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def _spec_value(attrs: dict[str, Any], key: str) -> Any:
    """What the sweep recorded under ``key``; a study from before it did: its spec file's
    value, where the file is here (None otherwise)."""
    if key in attrs or not attrs.get("spec"):
        return attrs.get(key)
    from lit_transformer.sweep.spec import load_spec

    try:
        return getattr(load_spec(attrs["spec"]), key)
    except (ConfigError, OSError):
        return None


def _budget(attrs: dict[str, Any]) -> str:
    """The per-trial budget the sweep recorded, and how it was chosen (``budget_why``)."""
    budget = _spec_value(attrs, "budget")
    why = _spec_value(attrs, "budget_why")
    return _budget_text(budget, attrs) + (f". Chosen: {why}" if why else "")


def _budget_text(budget: dict[str, Any] | None, attrs: dict[str, Any]) -> str:
    if budget is None:
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
    """The protocol of a study from before it was recorded, from its budget (or spec)."""
    return recorded_protocol(attrs)


def _precision(attrs: dict, study: optuna.Study) -> str:
    """The study's pinned precision; a study from before pinning names what its trials ran."""
    if attrs.get("precision"):
        return f"{attrs['precision']} (pinned by the study: {attrs.get('precision_reason', '?')})"
    ran = {t.user_attrs.get("precision") for t in study.trials} - {None}
    return ", ".join(sorted(ran)) if ran else "not recorded (a study from before pinning)"


def _load(storage: str, study_name: str) -> optuna.Study:
    from lit_transformer.sweep.storage import open_storage

    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ConfigError(f"no study named '{study_name}' in that storage") from None


def _ablation_of(study: optuna.Study, ablation_path: str | None):
    path = ablation_path or study.user_attrs.get("ablation")
    if not path:
        raise ConfigError(
            f"study '{study.study_name}' does not name its ablation file: pass --ablation"
        )
    if not ablation_path and not Path(path).is_file():
        # The study moved (a committed study file): the same file name in this checkout.
        moved = Path("ablations") / Path(path).name
        path = str(moved) if moved.is_file() else path
    return load_ablation(path)


def _study_meta(study: optuna.Study, ablation, protocol: str) -> dict[str, str]:
    """The lines that describe one study: what ran, under which budget, on what."""
    attrs = study.user_attrs
    # COMPLETE trials only: a stale trial failed when a later session claims work would
    # otherwise stretch the span to that session with nothing trained in it.
    trials = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_start and t.datetime_complete
    ]
    span = (
        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
        if trials
        else None
    )
    return {
        "study": study.study_name,
        "command": " ; then ".join(attrs.get("commands") or [attrs.get("command", "?")]),
        "scale": f"{ablation.scale or '?'}: {ablation.description}".rstrip(": "),
        "protocol": protocol,
        "budget per trial": _budget(attrs),
        "hardware": _hardware(attrs, trials),
        "precision": _precision(attrs, study),
        "wall time": (
            f"{span.total_seconds() / 3600:.2f} h (first start to last end of COMPLETE trials); "
            f"their own durations sum to {_hours(trials):.2f} h"
            if span
            else "?"
        ),
    }


def _hours(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Summed start-to-end hours of ``trials`` (parallel workers overlap, pauses count)."""
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials) / 3600


def _hardware(attrs: dict[str, Any], trials: list[optuna.trial.FrozenTrial]) -> str:
    """Each machine the COMPLETE trials ran on, with its trial count.

    A study moves between machines (its pinned precision keeps the computation the same), so
    the machine that created it need not be the one that ran a trial. Trials from workers that
    did not record their machine are counted apart, beside the study's creating machine.
    """
    seen = Counter(t.user_attrs.get("hardware") for t in trials)
    unrecorded = seen.pop(None, 0)
    created = attrs.get("hardware", "?")
    if not seen:
        if not unrecorded:
            return created
        return f"{created} (where the study was created; its trials do not record their machine)"
    parts = [f"{hw} ({n} trial{'s' * (n != 1)})" for hw, n in seen.most_common()]
    if unrecorded:
        parts.append(
            f"{unrecorded} trial{'s' * (unrecorded != 1)} not recorded (study created on {created})"
        )
    return "; ".join(parts)


def paper_bleu_meta(studies: list[optuna.Study], frames: list[pd.DataFrame]) -> dict[str, str]:
    """The paper-style BLEU line with its signatures, for reports whose trials scored it."""
    if not any("bleu_paper" in f for f in frames):
        return {}
    found = {r.paper_signature for s in studies for r in trial_records(s)} - {None}
    return {"BLEU (paper-style)": ", ".join(sorted(found)) or "?"}


def _labels(protocols: list[str], names: list[str]) -> list[str]:
    """Column labels: each study's protocol (with its name where two studies share one)."""
    if len(set(protocols)) == len(protocols):
        return protocols
    return [f"{p}: {n}" for p, n in zip(protocols, names, strict=True)]


def make_report(
    storage: str,
    study_name: str,
    out: Path,
    ablation_path: str | None = None,
    wandb: str = "offline",
    notes: str | None = None,
    compare_study: str | None = None,
    compare_storage: str | None = None,
) -> dict[str, Any]:
    """Write the report into ``out``; ``notes`` (Markdown) is added as the report's Notes.

    With ``compare_study`` (a study in ``compare_storage``, default ``storage``) the report
    puts both studies side by side: per row, our columns under each study's protocol (say
    equal steps | equal time), the paper's once, and a summary of what holds per group under
    each. Rows are matched by id; the rows and the paper's figures are the first study's
    ablation file's (``ablation_path`` applies to the first study only). A study whose trials
    differ in protocol (or differ from the study's own record) raises ConfigError.

    Returns ``{"summary", "compare_summary", "holds", "files"}``: the first study's summary
    (:func:`~lit_transformer.report.table.summary`), the second's (or None), the per-group
    lines and the files written.
    """
    studies = [_load(storage, study_name)]
    if compare_study:
        studies.append(_load(compare_storage or storage, compare_study))
    ablations = [_ablation_of(studies[0], ablation_path)]
    # A second study that names no ablation file is read against the first one's.
    ablations += [
        _ablation_of(s, None) if s.user_attrs.get("ablation") else ablations[0] for s in studies[1:]
    ]
    protocols = [study_protocol(s) for s in studies]
    labels = _labels(protocols, [s.study_name for s in studies])
    ablation = ablations[0]
    refs = _dev_refs(ablation)
    # Rows are matched by id: the row order and the paper's figures are the first ablation's.
    frames = [build_table(s, ablation, refs) for s in studies]
    data = ablation.row_config(ablation.rows[0].id).data
    signatures = {t.user_attrs.get("bleu_signature") for s in studies for t in s.trials} - {None}
    metas = [
        _study_meta(s, abl, p) for s, abl, p in zip(studies, ablations, protocols, strict=True)
    ]
    meta = dict(metas[0]) if len(studies) == 1 else {}
    if len(studies) > 1:
        for label, m in zip(labels, metas, strict=True):
            meta.update({f"{k} ({label})": v for k, v in m.items() if k != "protocol"})
        meta["protocol"] = " | ".join(labels)
    meta |= {
        "data": f"{data.corpus} {data.src_lang}→{data.tgt_lang}, dev PPL and BLEU on its dev split"
        + (f" ({len(refs)} sentences)" if refs else ""),
        "BLEU": "sacreBLEU " + (", ".join(sorted(signatures)) or "?"),
        **paper_bleu_meta(studies, frames),
        "caveat": "the paper's columns are its own figures (paper-scale models on WMT 2014 EN-DE, "
        "newstest2013, 100k steps); where scale or data differ, compare the direction of each "
        "row's change vs base, not absolute values",
    }
    if len({a.scale for a in ablations}) > 1:
        meta["caveat"] += "; the studies ran different ablation files (see scale per study)"
    summaries = [summary(f) for f in frames]
    # Learning curves: the equal-steps study's (else the first study's).
    from lit_transformer.sweep.spec import EQUAL_STEPS

    which = protocols.index(EQUAL_STEPS) if EQUAL_STEPS in protocols else 0
    long = learning_curves(studies[which], out)
    written = write_all(
        list(zip(labels, frames, strict=True)),
        list(zip(labels, summaries, strict=True)),
        meta,
        long,
        out,
        notes,
        curves_label=labels[which],
        groups=[(r.id, r.group) for r in ablation.rows],
    )
    if wandb != "disabled":
        pngs = [p for p in written if p.suffix == ".png"]
        log_to_wandb(frames[0], pngs, study_name, out, wandb)
    return {
        "summary": summaries[0],
        "compare_summary": summaries[1] if len(summaries) > 1 else None,
        "holds": holds_lines(list(zip(labels, summaries, strict=True))),
        "files": [str(p) for p in written],
    }
