"""The report's header lines: wall time over COMPLETE trials, and the machines they ran on."""

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lit_transformer.report import _study_meta


def _trial(
    state: TrialState, start: datetime, hours: float, hardware: str | None = None
) -> FrozenTrial:
    return FrozenTrial(
        number=0,
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=start + timedelta(hours=hours),
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={} if hardware is None else {"hardware": hardware},
        system_attrs={},
        intermediate_values={},
        trial_id=0,
    )


def test_a_trial_failed_days_later_does_not_stretch_the_wall_time() -> None:
    study = optuna.create_study()
    t0 = datetime(2026, 12, 1, 8)
    study.add_trial(_trial(TrialState.COMPLETE, t0, 1.0))
    study.add_trial(_trial(TrialState.COMPLETE, t0 + timedelta(hours=1), 2.0))
    study.add_trial(_trial(TrialState.FAIL, t0 + timedelta(hours=20), 0.5))  # marked stale later
    meta = _study_meta(study, SimpleNamespace(scale="cpu", description=""), "equal steps")
    assert meta["wall time"].startswith("3.00 h")
    assert meta["wall time"].endswith("sum to 3.00 h")


ZEN3 = "AMD EPYC (2 cores, torch capability AVX2, bf16 flags: none)"
ZEN5 = "AMD EPYC (2 cores, torch capability AVX512, bf16 flags: avx512_bf16)"


def _meta_of(*trials: FrozenTrial, created: str | None = ZEN3) -> dict[str, str]:
    study = optuna.create_study()
    if created:
        study.set_user_attr("hardware", created)
    for t in trials:
        study.add_trial(t)
    return _study_meta(study, SimpleNamespace(scale="cpu", description=""), "equal steps")


def test_hardware_lists_each_machine_the_complete_trials_ran_on() -> None:
    t0 = datetime(2026, 12, 1, 8)
    meta = _meta_of(
        _trial(TrialState.COMPLETE, t0, 1.0, ZEN5),
        _trial(TrialState.COMPLETE, t0, 1.0, ZEN3),
        _trial(TrialState.COMPLETE, t0, 1.0, ZEN5),
        _trial(TrialState.FAIL, t0, 1.0, "a machine whose trial failed"),
    )
    assert meta["hardware"] == f"{ZEN5} (2 trials); {ZEN3} (1 trial)"


def test_trials_that_did_not_record_their_machine_are_counted_apart() -> None:
    t0 = datetime(2026, 12, 1, 8)
    mixed = _meta_of(
        _trial(TrialState.COMPLETE, t0, 1.0, ZEN5), _trial(TrialState.COMPLETE, t0, 1.0)
    )
    assert mixed["hardware"] == f"{ZEN5} (1 trial); 1 trial not recorded (study created on {ZEN3})"
    old = _meta_of(_trial(TrialState.COMPLETE, t0, 1.0))
    assert (
        old["hardware"]
        == f"{ZEN3} (where the study was created; its trials do not record their machine)"
    )
    assert _meta_of(created=None)["hardware"] == "?"


def test_the_budget_line_says_how_the_budget_was_chosen(tmp_path) -> None:
    study = optuna.create_study()
    study.set_user_attr("budget", {"steps": 3000, "row_scale": {"big": 3}})
    study.set_user_attr("budget_why", "base is within 1.5 BLEU of its plateau there.")
    meta = _study_meta(study, SimpleNamespace(scale="cpu", description=""), "equal steps")
    assert meta["budget per trial"] == (
        "3000 optimizer steps per row (big ×3). "
        "Chosen: base is within 1.5 BLEU of its plateau there."
    )
    # A study recorded before budget_why existed: its spec file says it, where it is here.
    spec = tmp_path / "s.yaml"
    ablation = Path(__file__).resolve().parents[2] / "ablations" / "table3-cpu-small.yaml"
    spec.write_text(
        f"ablation: {ablation}\nbudget: {{minutes: 5}}\n"
        "budget_why: >-\n  as the older\n  study had it\n"
    )
    older = optuna.create_study()
    older.set_user_attr("spec", str(spec))
    meta = _study_meta(older, SimpleNamespace(scale="cpu", description=""), "equal steps")
    assert meta["budget per trial"] == (
        "5 min of training steps per row (validation not counted). "
        "Chosen: as the older study had it"
    )
