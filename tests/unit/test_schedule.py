"""The paper's LR schedule against hand-computed values, stepped per optimizer step."""

from __future__ import annotations

import pytest
import torch

from lit_transformer.training.schedule import noam_lr, noam_scheduler


def test_lr_schedule_against_hand_computed_values():
    # lrate = d^-0.5 · min(step^-0.5, step · warmup^-1.5), d = 512, warmup = 4000.
    assert noam_lr(1, 512, 4000) == pytest.approx(512**-0.5 * 4000**-1.5)
    assert noam_lr(4000, 512, 4000) == pytest.approx(512**-0.5 * 4000**-0.5)  # the peak
    assert noam_lr(4000, 512, 4000) == pytest.approx(6.987712429686844e-4)
    assert noam_lr(16000, 512, 4000) == pytest.approx(noam_lr(4000, 512, 4000) / 2)
    assert noam_lr(100, 512, 4000, scale=2.0) == pytest.approx(2 * 512**-0.5 * 100 * 4000**-1.5)


def test_scheduler_steps_per_optimizer_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=123.0)
    sched = noam_scheduler(opt, d_model=256, warmup_steps=10)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([noam_lr(s, 256, 10) for s in range(1, 13)])
