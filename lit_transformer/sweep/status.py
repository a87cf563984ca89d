"""``sweep SPEC --status``: rows × seeds with state, dev PPL, BLEU and time; a running trial's
note is its newest progress line, where its ``trial.log`` can be read from here."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from lit_transformer.training.progress_text import clock, last_progress

# The newest progress line is near the end of trial.log; no need to read a long log whole
# (a tail of warnings longer than this leaves the note empty).
LOG_TAIL_BYTES = 16_384

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


def running_note(trial: optuna.trial.FrozenTrial, now: float | None = None) -> str:
    """``step 463/3000, left ~37m20s, log quiet 1m02s`` for a RUNNING trial: the newest progress
    line of its current attempt in ``out_dir/trial.log`` and the time since anything was last
    written there; ``on HOST`` when it runs on another machine, "" before its first line. A
    quiet time far above the line's period (``trainer.progress_every_s``, 60 s by default)
    outside the quiet phases (loading before the first line, the dev decode after the last
    step) means the trial is paused or its worker is gone."""
    out, host = trial.user_attrs.get("out_dir"), trial.user_attrs.get("host")
    if trial.state != TrialState.RUNNING or not out:
        return ""
    if host and host != socket.gethostname():
        return f"on {host}"  # a path there may name an old, unrelated log here
    log = Path(out) / "trial.log"
    try:
        with log.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
        quiet = (time.time() if now is None else now) - log.stat().st_mtime
    except OSError:
        return ""
    last = last_progress(text)
    if last is None:
        return ""
    note = f"step {last['step']}" + (f"/{last['total']}" if last["total"] else "")
    if last["left"]:
        note += f", left ~{last['left']}"
    return note + f", log quiet {clock(quiet)}"


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
            "note": t.user_attrs.get("fail_reason")
            or t.user_attrs.get("interrupted")
            or running_note(t),
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
