"""Dropout (§5.4) that is cheap on CPUs.

``F.dropout`` draws its mask with ``bernoulli_``, which on this project's 2-core CPU costs
2.6x as much as thresholding ``rand_like`` (128x16x1024 fp32: 25 ms vs 9.6 ms) and was 8% of
a CPU training step. Same distribution and scaling: keep with probability 1 − p, scale 1/(1 − p).
On other devices it is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        keep = torch.rand_like(x) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
