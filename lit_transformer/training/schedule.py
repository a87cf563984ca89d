"""The paper's learning-rate schedule (§5.3), stepped once per optimizer step (rule *same
steps, same batches*, ARCHITECTURE.md).

    lrate = scale · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

``step`` counts optimizer steps from 1, so under gradient accumulation the schedule advances
once per accumulated batch. It is a ``LambdaLR`` on an optimizer whose base lr is 1.0.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def noam_lr(step: int, d_model: int, warmup_steps: int, scale: float = 1.0) -> float:
    """Learning rate at optimizer step ``step`` (1-based)."""
    step = max(step, 1)
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def noam_lambda(d_model: int, warmup_steps: int, scale: float = 1.0) -> Callable[[int], float]:
    # LambdaLR passes the number of completed scheduler steps (0 before the first update).
    return lambda done: noam_lr(done + 1, d_model, warmup_steps, scale)


def noam_scheduler(
    optimizer: Optimizer, d_model: int, warmup_steps: int, scale: float = 1.0
) -> LambdaLR:
    for group in optimizer.param_groups:
        group["lr"] = 1.0
        group["initial_lr"] = 1.0
    return LambdaLR(optimizer, noam_lambda(d_model, warmup_steps, scale))
