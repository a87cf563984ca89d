"""Noise-aware verdicts, rank correlations and two-protocol reports, on hand-made numbers and
tiny synthetic studies (no training: trials are added to SQLite studies directly)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pandas as pd
import pytest

from lit_transformer.config import ConfigError
from lit_transformer.report import make_report
from lit_transformer.report.stats import (
    AGREES,
    CONTRADICTS,
    INCONCLUSIVE,
    NO_CHANGE,
    Interval,
    mean_interval,
    paired_differences,
    paper_unchanged,
    ranks,
    spearman,
    spearman_by_hand,
    t_quantile,
    verdict,
)
from lit_transformer.report.table import build_table, study_protocol, summary

optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- pure functions ------------------------------------------------------------------------------
def test_t_quantiles_match_the_printed_tables():
    for df, t in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)


def test_interval_is_the_t_interval_of_the_paired_differences():
    base = {1: 5.0, 2: 5.2, 3: 4.8, 4: 9.9}  # seed 4: no row trial, so not paired
    row = {1: 5.5, 2: 5.8, 3: 5.3, 5: 1.0}
    d = paired_differences(row, base)
    assert d == pytest.approx([0.5, 0.6, 0.5])
    iv = mean_interval(d)
    sd = math.sqrt(((0.5 - 8 / 15) ** 2 * 2 + (0.6 - 8 / 15) ** 2) / 2)
    half = 4.302653 * sd / math.sqrt(3)
    assert iv.n == 3 and iv.mean == pytest.approx(8 / 15)
    assert (iv.low, iv.high) == pytest.approx((8 / 15 - half, 8 / 15 + half), abs=1e-6)
    assert mean_interval([0.4]) == Interval(1, 0.4, None, None)  # one seed: no interval
    assert mean_interval([]) == Interval(0, None, None, None)


def test_each_verdict_on_hand_made_numbers():
    up = mean_interval([0.5, 0.6, 0.5])  # excludes 0 above
    down = mean_interval([-0.5, -0.6, -0.5])  # excludes 0 below
    across = mean_interval([0.5, -0.4, 0.2])  # contains 0
    assert verdict(up, +0.37, 2) == AGREES  # PPL rises in both
    assert verdict(down, -0.9, 1) == AGREES  # BLEU falls in both: direction, not "better"
    assert verdict(up, -0.26, 2) == CONTRADICTS
    assert verdict(down, +0.08, 2) == CONTRADICTS
    assert verdict(across, +0.37, 2) == INCONCLUSIVE
    assert verdict(mean_interval([5.0]), +0.37, 2) == INCONCLUSIVE  # n = 1: no interval
    assert verdict(up, 0.0, 2) == NO_CHANGE
    assert verdict(up, 25.8 - 25.8, 1) == NO_CHANGE
    assert verdict(mean_interval([]), 0.37, 2) == ""  # nothing paired: nothing to judge
    assert verdict(up, None, 2) == ""


def test_paper_no_change_is_below_half_a_printed_unit():
    assert paper_unchanged(4.92 - 4.92, 2) and paper_unchanged(0.004, 2)
    assert not paper_unchanged(4.91 - 4.92, 2)  # one printed unit: a change
    assert paper_unchanged(0.04, 1) and not paper_unchanged(25.7 - 25.8, 1)


def test_spearman_hand_computed_cases():
    # No ties: d = rank differences (-1, 1, -1, 1, 0), ρ = 1 − 6 Σd² / (n (n² − 1)) = 0.8.
    rho, p = spearman_by_hand([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert rho == pytest.approx(0.8)
    # p from t = ρ √(3 / (1 − ρ²)) with 3 df; Student's t CDF with 3 df in closed form.
    t = 0.8 * math.sqrt(3 / 0.36)
    u = t / math.sqrt(3)
    cdf = 0.5 + (u / (1 + u * u) + math.atan(u)) / math.pi
    assert p == pytest.approx(2 * (1 - cdf), rel=1e-9)
    # Ties take the average rank: x ranks (1, 2.5, 2.5, 4), Pearson on ranks = 3/√10.
    assert ranks([1, 2, 2, 3]) == [1, 2.5, 2.5, 4]
    rho, _ = spearman_by_hand([1, 2, 2, 3], [1, 3, 2, 4])
    assert rho == pytest.approx(3 / math.sqrt(10))
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])[0] == pytest.approx(0.8)
    assert spearman_by_hand([1, 2], [3, 1]) == (-1.0, None)  # n < 3: no p-value
    assert spearman_by_hand([1, 2, 3], [2, 2, 2]) == (None, None)  # constant: undefined


def test_spearman_by_hand_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (3, 4, 7, 12, 20):
        for _ in range(5):
            x = [rng.choice([1.0, 2.0, 3.0, 4.5, rng.random()]) for _ in range(n)]
            y = [rng.choice([2.0, 2.5, rng.random() * 10]) for _ in range(n)]
            rho, p = spearman_by_hand(x, y)
            ref = stats.spearmanr(x, y)
            if rho is None:
                assert math.isnan(ref.statistic)
                continue
            assert rho == pytest.approx(ref.statistic, abs=1e-12)
            assert p == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-12)


# -- synthetic studies ---------------------------------------------------------------------------
ABLATION = """\
scale: test
description: synthetic rows for report tests
defaults:
  model: {n_layers: 1, d_model: 32, d_ff: 64, heads: 2, d_k: 16, d_v: 16, max_positions: 128}
  data: {corpus: multi30k, vocab_size: 400, max_tokens: 512}
  trainer: {max_steps: 20, precision: "32", wandb: disabled}
rows:
  - {id: base, group: base, changes: base, paper: {dev_ppl: 4.92, dev_bleu: 25.8}}
  - {id: A-h1, group: A, changes: h=1, paper: {dev_ppl: 5.29, dev_bleu: 24.9}}
  - {id: A-h4, group: A, changes: h=2, paper: {dev_ppl: 5.0, dev_bleu: 25.5}}
  - {id: A-h16, group: A, changes: h=8, paper: {dev_ppl: 4.91, dev_bleu: 25.8}}
  - {id: B-dk16, group: B, changes: d_k=8, paper: {dev_ppl: 5.16, dev_bleu: 25.1}}
  - {id: E-learned-pos, group: E, changes: learned, paper: {dev_ppl: 4.92, dev_bleu: 25.7}}
  - {id: big, group: big, changes: big, paper: {dev_ppl: 4.33, dev_bleu: 26.4}}
"""
BASE = {1: (5.0, 30.0), 2: (5.2, 30.4), 3: (4.8, 29.6)}
PAPER_SIG = "paper-style: moses-tok(de, sacremoses 0.2.0)+compound-split, multi-bleu (…)"
# Per row: the per-seed differences to base (PPL, BLEU). Seeds missing are not run.
STEPS_DIFFS = {
    "A-h1": {1: (0.5, -1.0), 2: (0.6, -1.2), 3: (0.5, -0.9)},  # agrees, agrees
    "A-h4": {1: (-0.5, 0.5), 2: (-0.6, -0.6), 3: (-0.5, 0.2)},  # contradicts, inconclusive
    "A-h16": {1: (0.1, 0.3), 2: (-0.1, 0.2), 3: (0.05, 0.4)},  # inconclusive, paper: no change
    "B-dk16": {1: (0.3, -0.5)},  # one seed: inconclusive
    "E-learned-pos": {1: (0.2, 0.1), 2: (0.3, 0.0), 3: (0.25, 0.2)},  # paper: no change (PPL)
    "big": {1: (-0.4, 1.0), 2: (-0.5, 1.2), 3: (-0.45, 0.9)},  # agrees, agrees
}
TIME_DIFFS = {
    "A-h1": {1: (0.5, -1.0), 2: (-0.6, 1.2), 3: (0.1, -0.9)},  # inconclusive
    "A-h4": {1: (0.5, 0.5), 2: (0.6, 0.6), 3: (0.5, 0.7)},  # agrees, contradicts
    "big": {1: (0.4, -1.0), 2: (0.5, -1.2), 3: (0.45, -0.9)},  # contradicts, contradicts
}


def _metrics_csv(path: Path, final_ppl: float, final_bleu: float) -> None:
    """A Lightning CSV log: train lines without val columns, a validation every 10 steps
    (logged, as Lightning does, under the step before it)."""
    lines = []
    for step in range(5, 35, 5):
        if step % 10:
            lines.append({"epoch": 0, "step": step, "train/loss": 5.0})
        else:
            k = 30 / step
            lines.append(
                {"epoch": 0, "step": step - 1, "val/ppl": final_ppl * k, "val/bleu": final_bleu / k}
            )
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(lines).to_csv(path / "metrics.csv", index=False)


def _study(
    url: str,
    name: str,
    ablation: Path,
    budget: dict,
    diffs: dict,
    runs: Path,
    trial_protocol: dict | None = None,
    paper: float | None = None,
) -> optuna.Study:
    """``paper``: each trial also scored paper-style BLEU, its sacreBLEU + ``paper``: in its
    user attributes for seeds 1 and 2, in its ``result.json`` only for seed 3."""
    study = optuna.create_study(study_name=name, storage=url)
    study.set_user_attr("ablation", str(ablation))
    study.set_user_attr("budget", budget)
    protocol = "equal steps" if "steps" in budget else "equal training time"
    study.set_user_attr("protocol", protocol)
    dists = {
        "row": optuna.distributions.CategoricalDistribution(["base", *STEPS_DIFFS]),
        "seed": optuna.distributions.CategoricalDistribution([1, 2, 3]),
    }
    values = {("base", s): v for s, v in BASE.items()}
    for row, per_seed in diffs.items():
        for s, (dp, db) in per_seed.items():
            values[(row, s)] = (BASE[s][0] + dp, BASE[s][1] + db)
    for (row, seed), (ppl, bleu) in values.items():
        out_dir = runs / name / f"{row}-{seed}"
        _metrics_csv(out_dir / "csv", ppl, bleu)
        attrs = {"dev_bleu": bleu, "params": 1_000_000, "steps": 30, "out_dir": str(out_dir)}
        if trial_protocol is not None:
            attrs["protocol"] = trial_protocol.get((row, seed), protocol)
        if paper is not None:
            scored = {"dev_bleu_paper": bleu + paper, "bleu_paper_signature": PAPER_SIG}
            if seed == 3:
                (out_dir / "result.json").write_text(json.dumps(scored))
            else:
                attrs |= scored
        study.add_trial(
            optuna.trial.create_trial(
                params={"row": row, "seed": seed},
                distributions=dists,
                value=ppl,
                user_attrs=attrs,
            )
        )
    return study


@pytest.fixture
def world(tmp_path, monkeypatch) -> dict:
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("LIT_TRANSFORMER_DATA", str(empty))  # no dev refs: no bootstrap
    ablation = tmp_path / "abl.yaml"
    ablation.write_text(ABLATION)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    return {"url": url, "ablation": ablation, "runs": tmp_path / "runs", "tmp": tmp_path}


def test_build_table_gives_interval_and_verdict_per_metric(world):
    from lit_transformer.ablation import load_ablation

    study = _study(world["url"], "s", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"])
    frame = build_table(study, load_ablation(world["ablation"]), None).set_index("row")
    v = frame[["verdict_ppl", "verdict_bleu"]].to_dict("index")
    assert v["A-h1"] == {"verdict_ppl": AGREES, "verdict_bleu": AGREES}
    assert v["A-h4"] == {"verdict_ppl": CONTRADICTS, "verdict_bleu": INCONCLUSIVE}
    assert v["A-h16"] == {"verdict_ppl": INCONCLUSIVE, "verdict_bleu": NO_CHANGE}
    assert v["B-dk16"] == {"verdict_ppl": INCONCLUSIVE, "verdict_bleu": INCONCLUSIVE}
    assert v["E-learned-pos"]["verdict_ppl"] == NO_CHANGE
    assert v["base"] == {"verdict_ppl": "", "verdict_bleu": ""}
    assert frame.loc["A-h1", "d_ppl_n"] == 3 and frame.loc["B-dk16", "d_ppl_n"] == 1
    assert frame.loc["A-h1", "d_ppl_paired"] == pytest.approx(8 / 15)
    assert frame.loc["A-h1", "d_ppl_low"] > 0 and pd.isna(frame.loc["B-dk16", "d_ppl_low"])
    assert {"agree_ppl", "agree_bleu", "p_value", "d_ppl", "paper_d_ppl"} <= set(frame.columns)

    s = summary(frame.reset_index())
    assert s["verdicts_ppl"] == {AGREES: 2, CONTRADICTS: 1, INCONCLUSIVE: 2, NO_CHANGE: 1}
    assert s["groups"]["A"]["ppl"][CONTRADICTS] == ["A-h4"]
    rank = s["spearman"]["ppl"]
    assert rank["all"]["n"] == 7 and rank["all"]["p"] is not None
    assert rank["A"]["n"] == 4  # the group's three rows and base
    assert rank["B"] == {"rho": pytest.approx(1.0), "p": None, "n": 2}  # < 3 rows: no p
    ours = frame["ppl"].tolist()
    assert rank["all"]["rho"] == pytest.approx(spearman(ours, frame["paper_ppl"].tolist())[0])


def test_raw_direction_pairs_seeds_when_base_has_more(world, monkeypatch):
    """Base ahead by an outlying seed 3: the difference of means points the wrong way, the
    paired differences (seeds 1 and 2) the right one; the raw direction follows the pairs."""
    from lit_transformer.ablation import load_ablation

    monkeypatch.setitem(BASE, 3, (8.0, 20.0))
    diffs = {"A-h1": {1: (0.5, -1.0), 2: (0.5, -1.0)}}  # worse, as the paper's h = 1
    study = _study(world["url"], "ahead", world["ablation"], {"steps": 30}, diffs, world["runs"])
    frame = build_table(study, load_ablation(world["ablation"]), None).set_index("row")
    row = frame.loc["A-h1"]
    assert row["d_ppl"] < 0 and row["d_bleu"] > 0  # means over seeds {1, 2} vs {1, 2, 3}
    assert row["d_ppl_paired"] == pytest.approx(0.5)
    assert row["d_bleu_paired"] == pytest.approx(-1.0)
    assert (row["agree_ppl"], row["agree_bleu"]) == ("yes", "yes")
    # A row with no seed that base has is not judged, neither by direction nor by verdict.
    monkeypatch.delitem(BASE, 3)
    lone = _study(world["url"], "lone", world["ablation"], {"steps": 30}, {}, world["runs"])
    base = lone.get_trials()[0]
    lone.add_trial(
        optuna.trial.create_trial(
            params={"row": "A-h1", "seed": 3},
            distributions=base.distributions,
            value=base.value + 0.5,
            user_attrs={**base.user_attrs, "dev_bleu": base.user_attrs["dev_bleu"] - 1.0},
        )
    )
    row = build_table(lone, load_ablation(world["ablation"]), None).set_index("row").loc["A-h1"]
    assert row["n"] == 1 and row["d_ppl_n"] == 0 and pd.notna(row["d_ppl"])
    assert (row["agree_ppl"], row["agree_bleu"], row["verdict_ppl"]) == ("", "", "")


def test_a_study_mixing_protocols_is_refused(world, tmp_path):
    mixed = {("A-h1", 2): "equal training time"}
    _study(
        world["url"], "mixed", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"], mixed
    )
    with pytest.raises(ConfigError, match="never averages different protocols") as err:
        make_report(world["url"], "mixed", tmp_path / "r", wandb="disabled")
    assert "\n" not in str(err.value) and "equal training time: 1 trial)" in str(err.value)
    assert not (tmp_path / "r").exists()
    # Every trial says equal time but the study says equal steps: refused as well.
    every = {(r, s): "equal training time" for r in ["base", *STEPS_DIFFS] for s in (1, 2, 3)}
    study = _study(
        world["url"], "other", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"], every
    )
    with pytest.raises(ConfigError, match="mixes protocols"):
        study_protocol(study)
    # Trials without their own record take the study's.
    fine = _study(world["url"], "old", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"])
    assert study_protocol(fine) == "equal steps"


def test_two_protocols_side_by_side(world):
    _study(world["url"], "steps", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"])
    _study(world["url"], "time", world["ablation"], {"minutes": 1}, TIME_DIFFS, world["runs"])
    out = world["tmp"] / "report"
    result = make_report(world["url"], "steps", out, wandb="disabled", compare_study="time")
    assert result["summary"]["verdicts_ppl"][AGREES] == 2
    assert result["compare_summary"]["verdicts_ppl"][CONTRADICTS] == 1
    holds = result["holds"]
    assert holds[0] == (
        "A: PPL agrees 1/3, contradicts 1 (A-h4) (equal steps), 1/2 (equal training time); "
        "BLEU agrees 1/2 (equal steps), 0/2, contradicts 1 (A-h4) (equal training time) "
        "(paper: no change for A-h16)"
    )
    assert any(
        line.startswith("big: PPL agrees 1/1 (equal steps), 0/1, contradicts 1") for line in holds
    )
    md = (out / "table3.md").read_text()
    assert "# Table 3 replica: equal steps | equal training time" in md
    for label in ("equal steps", "equal training time"):
        assert f"verdict PPL ({label})" in md and f"Δ BLEU [95% CI] ({label})" in md
        assert f"budget per trial ({label})" in md
    assert "## What holds per group" in md and "How to read the verdicts" in md
    assert "+0.53 [+0.39, +0.68] (n=3)" in md  # A-h1's paired Δ PPL and its interval
    assert "## Rank correlation with the paper" in md
    # Learning curves of the equal-steps study, per group, linked and embedded.
    assert "## Learning curves (equal steps)" in md
    for group in ("A", "B", "E-big"):
        assert (out / f"curves_{group}.png").is_file() and f"(curves_{group}.png)" in md
    assert not (out / "curves_C.png").exists()  # no C rows in this ablation
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 3 + 3  # the 3 plots, curves of A, B, E+big
    csv = pd.read_csv(out / "table3.csv")
    assert set(csv["protocol"]) == {"equal steps", "equal training time"}
    assert len(csv) == 2 * 7
    tex = (out / "table3.tex").read_text()
    assert "verdict PPL (equal training time)" in tex and "\\toprule" in tex


def test_learning_curves_mean_over_seeds(world):
    from lit_transformer.report import learning_curves
    from lit_transformer.report.render import convergence_frame

    study = _study(world["url"], "s", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"])
    long = learning_curves(study)
    assert set(long.columns) == {"study", "row", "seed", "step", "ppl", "bleu"}
    assert sorted(long["step"].unique()) == [10, 20, 30]  # validation lines only
    base = long[long["row"] == "base"]
    assert base.groupby("step")["ppl"].mean()[30] == pytest.approx(5.0)
    conv = convergence_frame(long, ["base", "A-h1"]).set_index("row")
    # PPL 1.5× → 1× the final value over the last interval: −33.3%.
    assert conv.loc["base", "PPL change over last interval (%)"] == "-33.3"
    assert conv.loc["base", "last step"] == "30" and conv.loc["base", "seeds"] == 3


def test_curves_outlive_the_run_directories(world, tmp_path):
    """A study moved to another machine leaves its run directories behind: a trial's curve then
    comes from its ``dev_curve`` attribute, else from the curves.csv an earlier report kept (of
    this study only), and a trial with neither is left out."""
    import shutil

    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from lit_transformer.report import learning_curves

    study = _study(world["url"], "s", world["ablation"], {"steps": 30}, STEPS_DIFFS, world["runs"])
    out = tmp_path / "report"
    make_report(world["url"], "s", out, ablation_path=str(world["ablation"]), wandb="disabled")
    before = pd.read_csv(out / "curves.csv")
    assert len(before) == 3 * len(study.trials)  # 3 validations per trial
    shutil.rmtree(world["runs"])  # the run directories stay behind
    assert learning_curves(study).empty
    again = learning_curves(study, out)
    pd.testing.assert_frame_equal(again, before, check_dtype=False)

    # A trial that recorded its curve in the study needs neither; another study's kept curves
    # are not this one's.
    other = optuna.create_study(study_name="other", storage=world["url"])

    def add(seed: int, **attrs) -> None:
        dists = {"row": CategoricalDistribution(["base"]), "seed": CategoricalDistribution([1, 2])}
        params = {"row": "base", "seed": seed}
        other.add_trial(create_trial(params=params, distributions=dists, value=5.0, **attrs))

    add(1, user_attrs={"dev_curve": [[10, 9.0, 20.0], [20, 6.0, None]]})
    got = learning_curves(other, out)
    assert got[["step", "ppl"]].values.tolist() == [[10, 9.0], [20, 6.0]]
    assert got["bleu"].isna().tolist() == [False, True] and set(got["study"]) == {"other"}
    add(2)
    assert set(learning_curves(other, out)["seed"]) == {1}  # study s's base seed 2 is not its


def test_columns_are_labelled_by_protocol_and_by_name_where_two_share_one():
    from lit_transformer.report import _labels

    assert _labels(["equal steps", "equal training time"], ["a", "b"]) == [
        "equal steps",
        "equal training time",
    ]
    assert _labels(["equal steps", "equal steps"], ["a", "b"]) == [
        "equal steps: a",
        "equal steps: b",
    ]


def test_paper_style_bleu_has_its_own_column_only_where_trials_scored_it(world):
    from lit_transformer.ablation import load_ablation
    from lit_transformer.report.render import PAPER_BLEU, display_frame

    ablation = load_ablation(world["ablation"])
    plain = _study(world["url"], "plain", world["ablation"], {"steps": 30}, {}, world["runs"])
    frame = build_table(plain, ablation, None)
    assert "bleu_paper" not in frame  # a study without it reports as before
    assert PAPER_BLEU not in display_frame([("", frame)])

    diffs = {"A-h1": STEPS_DIFFS["A-h1"]}
    study = _study(
        world["url"], "paper", world["ablation"], {"steps": 30}, diffs, world["runs"], paper=0.75
    )
    frame = build_table(study, ablation, None).set_index("row")
    # Seeds 1 and 2 from the user attributes, seed 3 from result.json: all three found.
    assert frame.loc["base", "bleu_paper_n"] == 3 and frame.loc["big", "bleu_paper_n"] == 0
    assert frame.loc["base", "bleu_paper"] == pytest.approx(30.0 + 0.75)
    assert frame.loc["A-h1", "bleu_paper"] == pytest.approx(30.0 - 3.1 / 3 + 0.75)  # base + mean Δ
    assert frame.loc["base", "bleu"] == pytest.approx(30.0)  # sacreBLEU untouched
    shown = display_frame([("", frame.reset_index())]).set_index("row")
    assert shown.loc["base", PAPER_BLEU] == "30.75 ± 0.40 (n=3)"
    assert shown.loc["big", PAPER_BLEU] == ""

    out = world["tmp"] / "paper-report"
    make_report(world["url"], "paper", out, wandb="disabled")
    md = (out / "table3.md").read_text()
    assert f"| {PAPER_BLEU} " in md and "30.75 ± 0.40 (n=3)" in md
    assert f"- BLEU (paper-style): {PAPER_SIG}" in md
    assert "bleu_paper" in pd.read_csv(out / "table3.csv").columns
