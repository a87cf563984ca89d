"""Pages in a real browser (headless Chromium from the Debian packages): the Optuna dashboard
of a real study, and a committed report page. ``LIT_TRANSFORMER_SCREENSHOTS=DIR`` keeps a
screenshot of each (the ones committed beside the reports were made so)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "reports" / "table3-cpu-steps" / "study.db"
REPORT = REPO / "reports" / "table3-cpu-steps" / "index.html"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("LIT_TRANSFORMER_REQUIRE_CHROMIUM"):
            pytest.fail("Chromium is required here but not installed")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    return found


def page_text(chromium: str, url: str, screenshot: str | None = None) -> str:
    """What the page shows once its scripts have run: the rendered DOM's text."""
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]
    base += ["--virtual-time-budget=20000", "--hide-scrollbars"]
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    shots = os.environ.get("LIT_TRANSFORMER_SCREENSHOTS")
    if screenshot and shots:
        out = Path(shots) / screenshot
        subprocess.run([*base, f"--screenshot={out}", url], capture_output=True, timeout=120)
        assert out.stat().st_size > 10_000
    dom = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


@pytest.fixture
def dashboard(tmp_path):
    """``lit-transformer dashboard`` on a copy of the committed study (it may write notes)."""
    db = tmp_path / "study.db"
    shutil.copy(STUDY, db)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lit_transformer", "dashboard", "--storage", f"sqlite:///{db}",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert first.strip().endswith(f"http://127.0.0.1:{port}/dashboard"), first
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "the dashboard never came up"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_the_dashboard_shows_the_studys_trials(chromium, dashboard):
    import optuna

    study = optuna.load_study(study_name="table3-cpu-steps", storage=f"sqlite:///{STUDY}")
    first = min((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.number)
    text = page_text(chromium, f"{dashboard}/dashboard/studies/1/trials", "dashboard.png")
    assert "table3-cpu-steps" in text and f"{len(study.trials)} Trials" in text
    assert f"Trial {first.number} Complete" in text
    row, seed = first.params["row"], first.params["seed"]
    assert f"Parameter row {row} seed {seed}" in text  # its row and seed
    assert f"dev_bleu {first.user_attrs['dev_bleu']}" in text  # its BLEU, steps, status
    assert f"steps {first.user_attrs['steps']}" in text and "status complete" in text


def _visible_rows(dom: str) -> list[list[str]]:
    """The results table's rows a reader sees (not filtered out), as cell texts."""
    table = dom.split('<table class="results">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr( hidden=\"\")?>(.*?)</tr>", table.split("<tbody>", 1)[1], flags=re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r)
        ]
        for hidden, r in rows
        if not hidden
    ]


def test_the_committed_report_page_reads_like_a_results_section(chromium):
    """The committed report of the equal-steps study: its facts, verdict cells coloured, and a
    link's #filter=A-&sort=dev%20PPL shows group A's rows only, by dev PPL."""
    url = REPORT.resolve().as_uri()
    text = page_text(chromium, url, "index.png")
    assert text.strip().startswith("Table 3 replica: equal steps")
    # with a second study beside it each fact is named by protocol: "precision (equal steps) 32"
    for fact in (
        r"study( \(equal steps\))? table3-cpu-steps",
        r"protocol equal steps",
        r"precision( \(equal steps\))? 32",
        r"hardware",
    ):
        assert re.search(fact, text), fact
    assert "sacreBLEU nrefs:1|case:mixed" in text
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*base, "--dump-dom", url + "#filter=A-&sort=dev%20PPL"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'class="v-inconclusive"' in dom or 'class="v-agrees"' in dom  # verdicts coloured
    rows = _visible_rows(dom)
    assert rows and all(r[0].startswith("A-") for r in rows)  # the filter
    assert len(rows) < len(_visible_rows(subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout))  # fmt: skip
    header = re.findall(r"<th[^>]*>(.*?)</th>", dom.split('<table class="results">', 1)[1])
    col = next(i for i, h in enumerate(header) if h.startswith("dev PPL"))  # first protocol's
    ppl = [float(r[col].split()[0]) for r in rows]
    assert ppl == sorted(ppl)  # the sort


def test_dashboard_refuses_a_missing_study_file_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lit_transformer", "dashboard", "--storage",
         f"sqlite:///{tmp_path / 'none.db'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().endswith("no such SQLite file")
    assert not (tmp_path / "none.db").exists()
