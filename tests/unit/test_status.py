"""``sweep --status`` shows how far a running trial is, from the progress lines its process
writes to ``trial.log``; the line's text is written and read back by one module."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import torch

from lit_transformer.sweep.status import running_note, status_table
from lit_transformer.training.progress import ProgressLine
from lit_transformer.training.progress_text import format_line, last_progress

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_progress_line_reads_back():
    line = format_line(463, 3000, 5.547, 2126.4, 303.0, 2240.0)
    assert line == "step 463/3000  loss 5.547  2,126 tgt tok/s  elapsed 5m03s  left ~37m20s"
    assert last_progress(line) == {"step": 463, "total": 3000, "elapsed": "5m03s", "left": "37m20s"}
    # No step budget and no estimate; a time over an hour.
    bare = format_line(12, -1, None, 10.0, 3723.0, None)
    assert bare == "step 12  10 tgt tok/s  elapsed 1h02m03s"
    assert last_progress(bare) == {"step": 12, "total": None, "elapsed": "1h02m03s", "left": None}
    # The newest line wins; other lines (warnings, Lightning's own) are not progress.
    log = "\n".join(["step 4/10  loss 9.000  5 tgt tok/s  elapsed 0m01s  left ~0m02s", "Warning"])
    log += "\nstep 8/10  loss 8.000  5 tgt tok/s  elapsed 0m02s  left ~0m01s\n`Trainer.fit` stopped"
    assert last_progress(log)["step"] == 8
    assert last_progress("step size 0.1 is small\nno progress here") is None


def test_the_callback_writes_lines_that_read_back():
    stream = io.StringIO()
    callback = ProgressLine(every_s=None, every_n_steps=2, max_steps=6, stream=stream)
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
    assert last_progress(stream.getvalue())["total"] == 6 and "left ~" in lines[-1]


def test_status_notes_where_a_running_trial_is(tmp_path):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    live, gone, done = tmp_path / "live", tmp_path / "elsewhere", tmp_path / "done"
    for out in (live, done):
        out.mkdir()
        text = "Seed set to 1\n" + format_line(463, 3000, 5.5, 2126.0, 303.0, 2240.0) + "\n"
        (out / "trial.log").write_text(text)
    old = time.time() - 90
    os.utime(live / "trial.log", (old, old))
    for row, out in (("A-h1", live), ("big", gone)):
        trial = study.ask()  # RUNNING
        trial.set_user_attr("row", row)
        trial.set_user_attr("seed", 1)
        trial.set_user_attr("out_dir", str(out))
    finished = study.ask()
    for key, value in {"row": "base", "seed": 1, "out_dir": str(done), "dev_bleu": 30.0}.items():
        finished.set_user_attr(key, value)
    study.tell(finished, 7.1)
    notes = status_table(study).set_index("row")["note"].to_dict()
    assert notes["A-h1"].startswith("step 463/3000, left ~37m20s, logged 1m3")  # ~90 s ago
    assert notes["big"] == ""  # its log is on another machine
    assert notes["base"] == ""  # finished: the note is for running trials
    trial = study.get_trials()[0]
    assert running_note(trial, now=os.stat(live / "trial.log").st_mtime + 3700).endswith(
        "logged 1h01m40s ago"
    )


def test_status_stays_free_of_torch_and_lightning():
    code = (
        "import sys, lit_transformer.sweep.status, lit_transformer.sweep.start; "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
