"""Encoder and decoder layers (§3.1), post-LN as in the paper.

Each sub-layer's output is ``LayerNorm(x + Dropout(Sublayer(x)))`` (§5.4: dropout "to the
output of each sub-layer, before it is added to the sub-layer input and normalized").
"""

from __future__ import annotations

from torch import Tensor, nn

from lit_transformer.model.attention import MultiHeadAttention
from lit_transformer.model.cache import LayerCache
from lit_transformer.model.dropout import Dropout


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (§3.3)."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(self.w_1(x).relu())


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ff: int, heads: int, d_k: int, d_v: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, d_k, d_v)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff)
        self.norm_1 = nn.LayerNorm(d_model)
        self.norm_2 = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, src_mask: Tensor | None) -> Tensor:
        x = self.norm_1(x + self.dropout(self.self_attn(x, x, mask=src_mask)))
        return self.norm_2(x + self.dropout(self.feed_forward(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ff: int, heads: int, d_k: int, d_v: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, d_k, d_v)
        self.cross_attn = MultiHeadAttention(d_model, heads, d_k, d_v)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff)
        self.norm_1 = nn.LayerNorm(d_model)
        self.norm_2 = nn.LayerNorm(d_model)
        self.norm_3 = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        src_mask: Tensor | None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """Without a cache, ``y`` is the whole shifted target and self-attention is causal.
        With a cache, ``y`` holds only the newest position(s) and attends to the cached past."""
        if cache is None:
            a = self.self_attn(y, y, is_causal=y.size(1) > 1)
            y = self.norm_1(y + self.dropout(a))
            a = self.cross_attn(y, memory, mask=src_mask)
        else:
            if y.size(1) != 1:
                raise ValueError("incremental decoding feeds one position at a time")
            a = self.self_attn(y, y, cache=cache.self_attn)
            y = self.norm_1(y + self.dropout(a))
            a = self.cross_attn(y, memory, mask=src_mask, cache=cache.memory)
        y = self.norm_2(y + self.dropout(a))
        return self.norm_3(y + self.dropout(self.feed_forward(y)))
