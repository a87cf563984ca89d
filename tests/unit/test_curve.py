"""The dev curve read from a Lightning CSV log, as result.json and the study record it."""

from __future__ import annotations

from pathlib import Path

from lit_transformer.training.curve import dev_curve


def test_dev_curve_by_optimizer_step(tmp_path: Path):
    """Validation rows only, at the optimizer step (Lightning writes step − 1); a step
    validated twice keeps the later PPL and the BLEU of the one that decoded; no file: []."""
    assert dev_curve(tmp_path) == []
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,train/loss,val/ppl,val/bleu\n"
        "0,4,5.0,,\n"
        "0,9,,40.0,10.5\n"
        "0,14,4.0,,\n"
        "0,19,,20.0,21.0\n"
        "1,19,,19.5,\n"  # a second validation of step 20 that decoded nothing
        "1,29,,15.0,\n"
    )
    assert dev_curve(tmp_path) == [[10, 40.0, 10.5], [20, 19.5, 21.0], [30, 15.0, None]]
