"""What the decoder keeps between the steps of one incremental decoding call.

Per decoder layer, a :class:`SelfAttentionCache` holds the keys/values of the positions decoded
so far, one row per hypothesis, and a :class:`MemoryCache` the encoder–decoder keys/values,
projected from the encoder output once and kept one row per source sentence. The decoder's rows
are sentence-major: ``width`` hypotheses per sentence, hypothesis j of sentence i at row
i·width + j.

A search moves hypotheses between steps with :meth:`DecoderCache.reorder`; attention only
appends to or reads these caches. Two things in here are for speed:

- a reorder of the self-attention keys/values is deferred to the next append and done in the
  same copy (:func:`select_and_append`), so each step copies the cache once, not twice;
- the encoder keys/values stay one row per sentence even when a sentence has ``width``
  hypotheses: :meth:`MemoryCache.group_queries` stacks a sentence's queries so that they attend
  in one product and its keys/values are read once, not once per hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


def select_and_append(past: Tensor, new: Tensor, rows: Tensor | None) -> Tensor:
    """[past[rows], new] along time, [B, h, t, d] + [B', h, 1, d] → [B', h, t + 1, d].

    The selected rows are copied straight into the result: one copy of the cache per step, not
    a select and then a concatenate (BENCHMARKS.md, session 4)."""
    if rows is None:
        return torch.cat([past, new], dim=2)
    if past.requires_grad or new.requires_grad:  # out= has no autograd
        return torch.cat([past.index_select(0, rows), new], dim=2)
    t = past.size(2)
    out = past.new_empty(rows.numel(), past.size(1), t + new.size(2), past.size(3))
    torch.index_select(past, 0, rows, out=out[:, :, :t])
    out[:, :, t:] = new
    return out


def hypothesis_rows(beams: Tensor, sentences: Tensor | None, width: int) -> Tensor:
    """The rows that the next step's hypotheses continue, sentence-major.

    ``beams`` [n, K]: for each of the next step's n sentences, which of its ``width`` current
    hypotheses each of its K new ones extends; ``sentences`` [n]: the current batch position of
    each of those sentences (None: all of them, in order). Row (i, j) continues row
    sentences[i]·width + beams[i, j]."""
    if sentences is None:
        sentences = torch.arange(beams.size(0), device=beams.device)
    return (sentences[:, None] * width + beams).view(-1)


@dataclass
class SelfAttentionCache:
    """One self-attention module's keys [B, h, t, d_k] and values [B, h, t, d_v] so far.

    ``fused_qkv`` holds [W^Q; W^K; W^V] and their biases for the rest of the decoding call
    (``MultiHeadAttention`` fills it); the weights cannot change within one call, and nothing
    here outlives it."""

    k: Tensor | None = None
    v: Tensor | None = None
    fused_qkv: tuple[Tensor, Tensor] | None = None
    pending_rows: Tensor | None = None  # a reorder that the next append applies

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the newest position's keys/values (after any pending reorder); returns all of
        them, the newest last."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k = select_and_append(self.k, k, self.pending_rows)
            self.v = select_and_append(self.v, v, self.pending_rows)
        self.pending_rows = None
        return self.k, self.v

    def reorder(self, rows: Tensor) -> None:
        """Row i of the next step continues row ``rows[i]``. Deferred to the next append;
        reorders in between compose."""
        if self.k is None:
            return  # nothing cached yet
        pending = self.pending_rows
        self.pending_rows = rows if pending is None else pending.index_select(0, rows)


@dataclass
class MemoryCache:
    """One encoder–decoder attention module's keys [n, h, S, d_k] and values [n, h, S, d_v],
    one row per source sentence, each serving the ``width`` decoder rows of its sentence."""

    k: Tensor | None = None
    v: Tensor | None = None
    width: int = 1

    def store(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k, self.v = k, v
        return k, v

    def select(self, sentences: Tensor | None, width: int) -> None:
        """Keep the rows of ``sentences`` (None: all) for ``width`` decoder rows each."""
        if sentences is not None and self.k is not None and self.v is not None:
            self.k, self.v = self.k.index_select(0, sentences), self.v.index_select(0, sentences)
        self.width = width

    def group_queries(self, q: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Queries [n·w, h, t, d] of the decoder rows → [n, h, w·t, d], a sentence's w·t
        queries together, against its one row of keys/values. ``mask`` may be one row per
        sentence or one per decoder row (the w rows of a sentence have the same)."""
        w = self.width
        if w == 1:
            return q, mask
        b, h, t, d = q.shape
        if mask is not None and mask.size(0) == b:
            mask = mask[::w]
        return q.view(b // w, w, h, t, d).transpose(1, 2).reshape(b // w, h, w * t, d), mask

    def ungroup(self, out: Tensor) -> Tensor:
        """Attention output [n, h, w·t, d_v] → [n·w, t, h·d_v], heads concatenated per row."""
        n, h, wt, d = out.shape
        w = self.width
        if w == 1:
            return out.transpose(1, 2).reshape(n, wt, h * d)
        t = wt // w
        return out.view(n, h, w, t, d).permute(0, 2, 3, 1, 4).reshape(n * w, t, h * d)


@dataclass
class LayerCache:
    self_attn: SelfAttentionCache = field(default_factory=SelfAttentionCache)
    memory: MemoryCache = field(default_factory=MemoryCache)


@dataclass
class DecoderCache:
    """Every decoder layer's caches, for hypotheses held sentence-major, ``width`` per
    sentence (one per sentence until the first reorder)."""

    layers: list[LayerCache]
    width: int = 1

    @classmethod
    def empty(cls, n_layers: int) -> DecoderCache:
        return cls([LayerCache() for _ in range(n_layers)])

    def reorder(self, beams: Tensor, sentences: Tensor | None = None) -> None:
        """Move to the next step's hypotheses: K = ``beams.size(1)`` per sentence, where
        ``beams[i, j]`` is the current hypothesis of sentence i that hypothesis j extends,
        and ``sentences`` the current positions of the sentences that stay (None: all of them,
        in order; see :func:`hypothesis_rows`).

        The self-attention keys/values follow their hypotheses at the next append; the encoder
        keys/values, one row per sentence, are selected now, and only when sentences leave."""
        rows = hypothesis_rows(beams, sentences, self.width)
        self.width = beams.size(1)
        for layer in self.layers:
            layer.self_attn.reorder(rows)
            layer.memory.select(sentences, self.width)
