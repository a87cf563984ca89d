"""``sweep SPEC --status``: rows × seeds with state, dev PPL, BLEU and time."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.trial import TrialState

# When a row × seed has several trials (retries), show the most advanced one.
STATE_RANK = {
    TrialState.COMPLETE: 5,
    TrialState.RUNNING: 4,
    TrialState.WAITING: 3,
    TrialState.PRUNED: 2,
    TrialState.FAIL: 1,
}


def all_params(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's params, including the fixed params of one still WAITING in the queue."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def status_table(study: optuna.Study) -> pd.DataFrame:
    best: dict[tuple, tuple[int, dict]] = {}
    retries: dict[tuple, int] = {}
    for t in study.get_trials(deepcopy=False):
        params = all_params(t)
        row = t.user_attrs.get("row", params.get("row", "?"))
        seed = t.user_attrs.get("seed", params.get("seed", "?"))
        key = (row, seed) if "row" in params else (row, seed, t.number)
        retries[key] = retries.get(key, 0) + (
            1 if t.state == TrialState.FAIL and "fail_reason" not in t.user_attrs else 0
        )
        entry = {
            "row": row,
            "seed": seed,
            "trial": t.number,
            "state": t.state.name,
            "dev_ppl": t.value if t.state == TrialState.COMPLETE else None,
            "dev_bleu": t.user_attrs.get("dev_bleu"),
            "steps": t.user_attrs.get("steps"),
            "wall_s": t.user_attrs.get("trial_wall_s"),
            "note": t.user_attrs.get("fail_reason") or t.user_attrs.get("interrupted", ""),
        }
        rank = STATE_RANK.get(t.state, 0)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, entry)
    rows = [entry | {"retries": retries.get(key, 0)} for key, (_, entry) in best.items()]
    frame = pd.DataFrame(
        rows,
        columns=[
            "row",
            "seed",
            "trial",
            "state",
            "dev_ppl",
            "dev_bleu",
            "steps",
            "wall_s",
            "retries",
            "note",
        ],
    )
    return frame.sort_values(["trial"]).reset_index(drop=True)


def format_status(frame: pd.DataFrame, study_name: str) -> str:
    if frame.empty:
        return f"study {study_name}: no trials yet"
    counts = frame["state"].value_counts().to_dict()
    head = f"study {study_name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return head + "\n" + frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}")
