"""``sweep --status`` shows how far a running trial is, from the progress lines its process
writes to ``trial.log``; the line's text is written and read back by one module."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
import torch

from lit_transformer.sweep import status
from lit_transformer.sweep.status import running_note, status_table
from lit_transformer.training.progress import ProgressLine
from lit_transformer.training.progress_text import (
    attempt_line,
    current_attempt,
    format_line,
    last_progress,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

LINE = format_line(463, 3000, 5.547, 2126.4, 303.0, 2240.0)


def test_a_progress_line_reads_back():
    assert LINE == "step 463/3000  loss 5.547  2,126 tgt tok/s  elapsed 5m03s  left ~37m20s"
    assert last_progress(LINE) == {"step": 463, "total": 3000, "elapsed": "5m03s", "left": "37m20s"}
    # No step budget and no estimate; a time over an hour.
    bare = format_line(12, -1, None, 10.0, 3723.0, None)
    assert bare == "step 12  10 tgt tok/s  elapsed 1h02m03s"
    assert last_progress(bare) == {"step": 12, "total": None, "elapsed": "1h02m03s", "left": None}
    # The newest line wins; a validation line, warnings and Lightning's own are not progress.
    log = "\n".join(["step 4/10  loss 9.000  5 tgt tok/s  elapsed 0m01s  left ~0m02s", "Warning"])
    log += "\nstep 8/10  loss 8.000  5 tgt tok/s  elapsed 0m02s  left ~0m01s\n`Trainer.fit` stopped"
    log += "\nstep 500: dev ppl 67.50, dev BLEU 5.89"
    assert last_progress(log)["step"] == 8
    assert last_progress("step size 0.1 is small\nno progress here") is None
    assert last_progress(LINE[:-3]) is None  # a line cut off while it is written


def test_a_retry_does_not_show_the_killed_attempts_progress():
    earlier = attempt_line(7, "2026-12-08T01:00:00Z", "h") + "\n" + LINE + "\n"
    retry = earlier + attempt_line(9, "2026-12-08T02:00:00Z", "h") + "\nprecision: 32\n"
    assert last_progress(earlier)["step"] == 463
    assert last_progress(retry) is None
    assert last_progress(retry + format_line(40, 3000, 6.1, 9.0, 60.0, 600.0))["step"] == 40
    # What a failed attempt's reason quotes: its own last line, or none.
    assert current_attempt(retry) == ["precision: 32"]
    assert current_attempt(earlier + attempt_line(9, "2026-12-08T02:00:00Z", "h")) == []
    assert current_attempt("no attempt line\nhere") == ["no attempt line", "here"]


@pytest.mark.parametrize(
    ("max_steps", "max_minutes", "total"),
    [(6, None, 6), (-1, 5.0, None), (6, 5.0, 6)],
    ids=["steps", "minutes", "both"],
)
def test_the_callback_writes_lines_that_read_back(max_steps, max_minutes, total):
    stream = io.StringIO()
    callback = ProgressLine(
        every_s=None, every_n_steps=2, max_steps=max_steps, max_minutes=max_minutes, stream=stream
    )
    trainer = SimpleNamespace(
        global_step=0, is_global_zero=True, world_size=1, accumulate_grad_batches=1
    )
    callback.on_train_start(trainer, None)
    for step in range(1, 5):
        trainer.global_step = step
        batch = {"n_tgt_tokens": torch.tensor(100)}
        callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(2.5)}, batch, step - 1)
    lines = stream.getvalue().splitlines()
    assert [last_progress(line)["step"] for line in lines] == [2, 4]
    last = last_progress(stream.getvalue())
    assert last["total"] == total and last["left"] is not None


def _running(study: optuna.Study, row: str, out, host: str | None = None) -> None:
    trial = study.ask()  # RUNNING
    attrs = {"row": row, "seed": 1, "out_dir": str(out), "host": host or socket.gethostname()}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def test_status_notes_where_a_running_trial_is(tmp_path, monkeypatch):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    live, starting, gone, done = (tmp_path / d for d in ("live", "starting", "gone", "done"))
    head = attempt_line(0, "2026-12-08T02:35:00Z", socket.gethostname()) + "\nSeed set to 1\n"
    for out, text in ((live, head + LINE), (starting, LINE + "\n" + head), (done, LINE)):
        out.mkdir()
        (out / "trial.log").write_text(text + "\n")
    _running(study, "A-h1", live)
    _running(study, "A-h4", starting)  # a retry, before its first line
    _running(study, "big", gone)  # its directory is not on this machine
    _running(study, "C-N2", live, host="node7")  # runs on another machine
    finished = study.ask()
    for key, value in {"row": "base", "seed": 1, "out_dir": str(done), "dev_bleu": 30.0}.items():
        finished.set_user_attr(key, value)
    study.tell(finished, 7.1)
    written = os.stat(live / "trial.log").st_mtime
    monkeypatch.setattr(status.time, "time", lambda: written + 90)
    notes = status_table(study).set_index("row")["note"].to_dict()
    assert notes["A-h1"] == "step 463/3000, left ~37m20s, log quiet 1m30s"
    assert notes["A-h4"] == notes["big"] == notes["base"] == ""
    assert notes["C-N2"] == "on node7"
    trial = study.get_trials()[0]
    assert running_note(trial, now=written + 3700).endswith("log quiet 1h01m40s")


def test_status_stays_free_of_torch_and_lightning():
    code = (
        "import sys, lit_transformer.sweep.status, lit_transformer.sweep.start; "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
