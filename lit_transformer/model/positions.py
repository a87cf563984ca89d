"""Positional information (§3.5): the paper's sinusoids, or a learned table (Table 3 row E).

PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lit_transformer.errors import UserError


class SequenceTooLongError(UserError):
    """A sequence is longer than the learned position table."""


def sinusoid_table(length: int, d_model: int) -> Tensor:
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoids; extends itself for sequences longer than the cached table."""

    def __init__(self, d_model: int, max_positions: int = 1024) -> None:
        super().__init__()
        self.d_model = d_model
        self.register_buffer("table", sinusoid_table(max_positions, d_model), persistent=False)

    def forward(self, length: int, start: int = 0) -> Tensor:
        end = start + length
        if end > self.table.size(0):
            self.table = sinusoid_table(max(end, 2 * self.table.size(0)), self.d_model).to(
                self.table.device
            )
        return self.table[start:end]


class LearnedPositionalEmbedding(nn.Module):
    """A trained table of ``max_positions`` vectors (row E of Table 3)."""

    def __init__(self, d_model: int, max_positions: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.table = nn.Embedding(max_positions, d_model)
        nn.init.normal_(self.table.weight, mean=0.0, std=d_model**-0.5)

    def forward(self, length: int, start: int = 0) -> Tensor:
        end = start + length
        if end > self.max_positions:
            raise SequenceTooLongError(
                f"sequence of length {end} exceeds the learned position table "
                f"(model.max_positions={self.max_positions})"
            )
        return self.table.weight[start:end]
