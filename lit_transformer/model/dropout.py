"""Dropout (§5.4) that is cheap on CPUs.

``F.dropout`` draws its mask with ``bernoulli_``; thresholding ``rand_like`` is cheaper on the
CPUs measured (AVX-512 and AVX2; BENCHMARKS.md, "CPU kernel choices"), where dropout was 8% of
a training step. Same distribution and scaling: keep with probability 1 − p, scale 1/(1 − p).
On other devices, or with ``LIT_TRANSFORMER_CPU_KERNELS=dropout=bernoulli``, it is
``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_transformer.model.cpu_kernels import cpu_kernel


def threshold_dropout(x: Tensor, p: float) -> Tensor:
    """Training-mode dropout with the mask drawn by thresholding ``rand_like``."""
    keep = torch.rand_like(x) >= p
    return x * keep * (1.0 / (1.0 - p))


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or cpu_kernel("dropout") == "bernoulli":
            return F.dropout(x, self.p, True)
        return threshold_dropout(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
