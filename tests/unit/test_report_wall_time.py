"""The report's wall time spans the COMPLETE trials only."""

from datetime import datetime, timedelta
from types import SimpleNamespace

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from lit_transformer.report import _study_meta


def _trial(state: TrialState, start: datetime, hours: float) -> FrozenTrial:
    return FrozenTrial(
        number=0,
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=start + timedelta(hours=hours),
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={},
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
