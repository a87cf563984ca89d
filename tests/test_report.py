"""Reports: the Table 3 replica from a real (small) study, in every format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lit_transformer.cli.main import main
from lit_transformer.report.render import _pm
from lit_transformer.report.table import paired_bootstrap

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_ablation, small_data_root, session_cache) -> dict:
    d = tmp_path_factory.mktemp("report-study")
    ablation = d / "abl.yaml"
    ablation.write_text(
        tiny_ablation.read_text()
        + "  - id: D-diverge\n    group: D\n    changes: loss forced to NaN\n"
        "    paper: {dev_ppl: 5.77, dev_bleu: 24.6, params_millions: null}\n"
        "    trainer: {inject_nan_at_step: 3}\n"
        "  - id: E-learned-pos\n    group: E\n    changes: learned positions (never run)\n"
        "    paper: {dev_ppl: 4.92, dev_bleu: 25.7, params_millions: null}\n"
        "    model: {positions: learned}\n"
    )
    spec = d / "rep.yaml"
    spec.write_text(
        f"study: rep\nablation: {ablation}\nrows: [base, A-h1, D-diverge]\n"
        "seeds: [1, 2]\nbudget: {max_steps: 12}\nbeam: 1\n"
        "overrides:\n  trainer: {val_check_interval: 6}\n"
    )
    env = {
        **os.environ,
        "LIT_TRANSFORMER_DATA": str(small_data_root),
        "LIT_TRANSFORMER_CACHE": str(session_cache),
        "WANDB_MODE": "disabled",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lit_transformer",
            "sweep",
            str(spec),
            "--run-dir",
            str(d),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = os.environ.get("LIT_TRANSFORMER_DATA")
    os.environ["LIT_TRANSFORMER_DATA"] = str(small_data_root)  # the report reads dev refs
    yield {"url": f"sqlite:///{d / 'rep.db'}", "dir": d}
    if saved is None:
        os.environ.pop("LIT_TRANSFORMER_DATA", None)
    else:
        os.environ["LIT_TRANSFORMER_DATA"] = saved


def report(study: dict, out: Path, capsys, *extra: str) -> str:
    argv = ["report", "--storage", study["url"], "--study", "rep", "--out", str(out)]
    code = main([*argv, "--wandb", "offline", *extra])
    assert code == 0
    return capsys.readouterr().out


def test_report_has_every_row_format_and_the_papers_figures(study, tmp_path, capsys):
    out = tmp_path / "r"
    printed = report(study, out, capsys)
    assert "rows complete" in printed
    for name in (
        "table3.md",
        "table3.tex",
        "table3.csv",
        "index.html",
        "curves.png",
        "bleu_vs_params.png",
        "delta_vs_base.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "table3.md").read_text()
    for row in ("base", "A-h1", "D-diverge", "E-learned-pos"):
        assert f"| {row} " in md
    assert "4.92" in md and "25.8" in md  # the paper's base figures
    assert "± " in md and "(n=2)" in md  # two seeds: mean ± std
    assert "missing" in md  # E-learned-pos never ran
    assert "diverged" in md  # D-diverge failed, with its reason
    tex = (out / "table3.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex  # booktabs
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # self-contained: 3 plots, group A curves
    # A results section: the facts as a block, a sortable and filterable table, verdicts coloured.
    assert '<dl class="facts"><dt>study</dt><dd>rep</dd>' in html
    assert '<table class="results">' in html and 'id="filter"' in html and "<script>" in html
    import pandas as pd

    from lit_transformer.report.render import results_table_html

    four = ["agrees", "contradicts", "inconclusive", "paper: no change"]
    page = results_table_html(pd.DataFrame({"row": list("abcd"), "verdict PPL": four}))
    found = re.findall(r'<td class="v-([a-z-]+)">([^<]*)</td>', page)
    classes = ["agrees", "contradicts", "inconclusive", "no-change"]
    assert found == list(zip(classes, four, strict=True))
    # Noise-aware verdicts, the rank correlation and the equal-steps curves per group.
    assert "verdict PPL" in md and "Δ BLEU [95% CI]" in md and "How to read the verdicts" in md
    assert "## Rank correlation with the paper" in md and "## What holds per group" in md
    assert (out / "curves_A.png").is_file() and "(curves_A.png)" in md
    assert not (out / "curves_D.png").exists()  # D-diverge failed: no curve to show
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    # What the numbers come from, stated in the report itself.
    assert "budget per trial: 12 steps" in md and "scale: test: a tiny model" in md
    assert "(40 sentences)" in md and "sacreBLEU nrefs:1|case:mixed" in md
    assert "compare the direction" in md


def test_notes_are_added_and_a_missing_notes_file_is_one_line(study, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("Trained on a laptop <b>quickly</b>.\n\nSecond paragraph.\n")
    report(study, tmp_path / "r", capsys, "--notes", str(notes))
    assert "## Notes\n\nTrained on a laptop" in (tmp_path / "r" / "table3.md").read_text()
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<p>Trained on a laptop &lt;b&gt;quickly&lt;/b&gt;.</p><p>Second paragraph.</p>" in page
    argv = ["report", "--storage", study["url"], "--study", "rep", "--out", str(tmp_path / "x")]
    assert main([*argv, "--notes", str(tmp_path / "nope.md")]) == 2
    assert "notes file not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_partial_rows_reported_and_output_deterministic(study, tmp_path, capsys):
    import pandas as pd

    report(study, tmp_path / "a", capsys)
    report(study, tmp_path / "b", capsys)
    for name in ("table3.md", "table3.csv", "table3.tex"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    frame = pd.read_csv(tmp_path / "a" / "table3.csv").set_index("row")
    assert frame.loc["E-learned-pos", "status"] == "missing"
    assert frame.loc["D-diverge", "status"] == "fail"
    assert frame.loc["base", "n"] == 2 and frame.loc["base", "status"] == "ok"
    assert pd.notna(frame.loc["A-h1", "p_value"])


def test_one_seed_shows_no_plus_minus():
    assert _pm(30.0, None, 1) == "30.00 (n=1)"
    assert _pm(30.0, 0.5, 3) == "30.00 ± 0.50 (n=3)"


def test_significance_agrees_with_sacrebleu_cli(tmp_path):
    refs = [
        "the cat sat on the mat",
        "a dog runs in the park",
        "two men play football",
        "a woman reads a book",
        "children swim in the lake",
        "the sun is shining",
    ] * 5
    base = [
        "the cat sat on a mat",
        "a dog runs in a park",
        "two men play soccer",
        "a woman reads the book",
        "kids swim in the lake",
        "the sun shines",
    ] * 5
    better = list(refs[:20]) + base[20:]
    p = paired_bootstrap(base, better, refs)
    for name, lines in (("ref", refs), ("base", base), ("better", better)):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(tmp_path / "ref"),
            "-i",
            str(tmp_path / "base"),
            str(tmp_path / "better"),
            "--paired-bs",
            "-f",
            "json",
            "-m",
            "bleu",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cli = json.loads(proc.stdout)
    cli_p = next(s for s in cli if s["system"] != "Baseline" and "better" in s["system"])
    assert p == pytest.approx(float(cli_p["BLEU"]["p_value"]))
    assert p < 0.05


def test_budget_line_says_whether_validation_counted():
    from lit_transformer.report import _budget

    assert _budget({"budget": {"max_steps": 12}}) == "12 steps"
    assert (
        _budget({"budget": {"max_minutes": 5}})
        == "5 min of training (periodic validation included)"
    )
    off = {"budget": {"max_minutes": 5, "max_steps": 900}, "budget_counts_validation": False}
    assert (
        _budget(off)
        == "5 min of training (validation not counted) or 900 steps, whichever ends first"
    )
