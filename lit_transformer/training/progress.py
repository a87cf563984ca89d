"""One progress line every M seconds or N steps, for runs whose stderr is not a terminal.

Lightning's progress bar is off there (a log file, ``nohup``, CI, a sweep worker's
``trial.log``), which left a run silent from start to end. A line reads::

    step 1200/3000  loss 3.412  5,931 tgt tok/s  elapsed 6m02s  left ~9m03s

The estimate is (steps left) / (recent steps per second) under a step budget, and the minutes
left under a time budget (whichever ends first). The line's text, written and read back (for
``sweep --status``), is in :mod:`lit_transformer.training.progress_text`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L

from lit_transformer.training.progress_text import format_line


class ProgressLine(L.Callback):
    def __init__(
        self,
        every_s: float | None = 60.0,
        every_n_steps: int | None = None,
        max_steps: int = -1,
        max_minutes: float | None = None,
        stream: Any = None,
    ) -> None:
        self.every_s = every_s or None
        self.every_n = every_n_steps or None
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        self.stream = stream
        self._t0: float | None = None
        self._last: tuple[float, int] | None = None
        self._tokens = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.monotonic()
        self._last = (self._t0, trainer.global_step)
        self._tokens = 0

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if isinstance(batch, dict) and "n_tgt_tokens" in batch:
            self._tokens += int(batch["n_tgt_tokens"])
        if self._last is None or not trainer.is_global_zero:
            return
        now, step = time.monotonic(), trainer.global_step
        t_last, step_last = self._last
        due_time = self.every_s is not None and now - t_last >= self.every_s
        due_step = self.every_n is not None and step - step_last >= self.every_n
        if not (due_time or due_step) or step == step_last:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            # Lightning hands back the loss divided by the accumulation factor.
            loss = float(loss.detach()) * trainer.accumulate_grad_batches
        rate = self._tokens * trainer.world_size / (now - t_last)
        elapsed = now - self._t0
        left = []
        if self.max_steps > 0:
            left.append((self.max_steps - step) * (now - t_last) / (step - step_last))
        if self.max_minutes:
            left.append(self.max_minutes * 60 - elapsed)
        line = format_line(step, self.max_steps, loss, rate, elapsed, min(left) if left else None)
        print(line, file=self.stream or sys.stderr, flush=True)
        self._last, self._tokens = (now, step), 0
