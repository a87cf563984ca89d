"""The text of a progress line (:class:`~lit_transformer.training.progress.ProgressLine`),
written and read back; free of torch and Lightning so that ``sweep --status`` stays quick.

A line reads::

    step 1200/3000  loss 3.412  5,931 tgt tok/s  elapsed 6m02s  left ~9m03s

A sweep worker writes an attempt line into ``trial.log`` before each start of a trial (a retry
appends to the same log), so that reading back never takes a killed attempt's progress for the
running one's.
"""

from __future__ import annotations

import re
from typing import Any

_CLOCK = r"\d+(?:h\d{2})?m\d{2}s"
_LINE = re.compile(
    rf"^step (?P<step>\d+)(?:/(?P<total>\d+))?\s.*?elapsed (?P<elapsed>{_CLOCK})"
    rf"(?:\s+left ~(?P<left>{_CLOCK}))?$"
)
_ATTEMPT = re.compile(r"^=== trial \d+ started ")


def clock(seconds: float) -> str:
    """``9m03s``, or ``1h02m03s`` from an hour on."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_line(
    step: int,
    max_steps: int,
    loss: float | None,
    rate: float,
    elapsed: float,
    left: float | None,
) -> str:
    """One progress line; ``max_steps`` ≤ 0: no step budget, ``left`` None: no estimate."""
    line = f"step {step}" + (f"/{max_steps}" if max_steps > 0 else "")
    if loss is not None:
        line += f"  loss {loss:.3f}"
    line += f"  {rate:,.0f} tgt tok/s  elapsed {clock(elapsed)}"
    return line + (f"  left ~{clock(left)}" if left is not None else "")


def attempt_line(number: int, when: str, host: str) -> str:
    """The line a worker writes into ``trial.log`` before it starts trial ``number``."""
    return f"=== trial {number} started {when} on {host} ==="


def current_attempt(text: str) -> list[str]:
    """The lines a log's latest attempt wrote: those after its last attempt line (every line
    of a log that has none)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if _ATTEMPT.match(lines[i].strip()):
            return lines[i + 1 :]
    return lines


def last_progress(text: str) -> dict[str, Any] | None:
    """The newest progress line of the latest attempt in a log's text as ``{"step", "total",
    "elapsed", "left"}`` (``total`` None without a step budget, ``left`` None without an
    estimate), or None when that attempt has written none yet."""
    for line in reversed(current_attempt(text)):
        match = _LINE.match(line.strip())
        if match:
            total = match["total"]
            return {
                "step": int(match["step"]),
                "total": int(total) if total else None,
                "elapsed": match["elapsed"],
                "left": match["left"],
            }
    return None
