"""A worker's next trial: a retried one (its checkpoints are waiting) before the others."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
from optuna.trial import TrialState

from lit_transformer.sweep.orchestrator import claim, enqueue_grid


def test_a_retried_trial_is_claimed_before_older_waiting_ones(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    for row in ("base", "A-h1", "A-h4"):
        study.enqueue_trial({"row": row, "seed": 1})
    waiting = study.get_trials(states=(TrialState.WAITING,))
    retry = waiting[-1]  # as RetryHeartbeatStaleTrialCallback marks a retry of trial 0
    study._storage.set_trial_system_attr(retry._trial_id, "failed_trial", 0)  # noqa: SLF001
    grid = SimpleNamespace(kind="grid")
    first = claim(study, grid)
    assert first is not None and first._trial_id == retry._trial_id  # noqa: SLF001
    assert study._storage.get_trial(retry._trial_id).state == TrialState.RUNNING  # noqa: SLF001
    assert first.suggest_categorical("row", ["base", "A-h1", "A-h4"]) == "A-h4"
    second = claim(study, grid)  # then the oldest waiting one, as study.ask() takes it
    assert second is not None and second.number == waiting[0].number


def test_a_retry_with_its_checkpoints_here_goes_before_one_without(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    for row in ("A-h4", "A-h32"):
        study.enqueue_trial({"row": row, "seed": 1})
    for t in study.get_trials(states=(TrialState.WAITING,)):  # both are retries
        study._storage.set_trial_system_attr(t._trial_id, "failed_trial", t.number)  # noqa: SLF001
    here = {"A-h32"}  # only A-h32's checkpoints are on this machine

    def resumable(t: optuna.trial.FrozenTrial) -> bool:
        return t.system_attrs["fixed_params"]["row"] in here

    first = claim(study, SimpleNamespace(kind="grid"), resumable)
    assert first.suggest_categorical("row", ["A-h4", "A-h32"]) == "A-h32"
    second = claim(study, SimpleNamespace(kind="grid"), resumable)
    assert second.suggest_categorical("row", ["A-h4", "A-h32"]) == "A-h4"


def test_a_trial_failed_by_bad_input_is_run_again_a_diverged_one_is_not(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    grid = SimpleNamespace(grid=[("base", 1), ("A-h1", 1), ("A-h4", 1)])
    assert enqueue_grid(study, grid) == 3
    reasons = [  # in the grid's order, which ask() takes
        "exit code 2: error: no data root found: pass --data-root DIR or set ...",
        "diverged: loss is nan at step 12",
        "exit code 1: Traceback (most recent call last):",
    ]
    for reason in reasons:
        trial = study.ask()
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=TrialState.FAIL)
    assert enqueue_grid(study, grid) == 1  # only the pair that failed on bad input
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"]["row"] for t in waiting] == ["base"]
