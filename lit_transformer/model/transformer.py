"""The encoder–decoder Transformer of "Attention Is All You Need" (§3).

Embeddings are multiplied by √d_model (§3.4) and summed with positions, then dropped out
(§5.4). With ``share_embeddings`` one matrix E (V × d_model, joint BPE vocabulary) serves as
source embedding, target embedding and pre-softmax projection: logits = h Eᵀ.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_transformer.config import ConfigError, ModelConfig
from lit_transformer.model.cache import DecoderCache
from lit_transformer.model.dropout import Dropout
from lit_transformer.model.layers import DecoderLayer, EncoderLayer
from lit_transformer.model.positions import LearnedPositionalEmbedding, SinusoidalPositionalEncoding


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, pad_id: int = 0) -> None:
        super().__init__()
        cfg.validate()
        if cfg.vocab_size <= 0:
            raise ConfigError("model.vocab_size must be positive (it is set from the tokenizer)")
        self.cfg, self.pad_id = cfg, pad_id
        d = cfg.d_model
        self.embed_scale = math.sqrt(d)
        self.src_embed = nn.Embedding(cfg.vocab_size, d, padding_idx=pad_id)
        if cfg.share_embeddings:
            self.tgt_embed = self.src_embed
            self.generator = None
        else:
            self.tgt_embed = nn.Embedding(cfg.vocab_size, d, padding_idx=pad_id)
            self.generator = nn.Linear(d, cfg.vocab_size, bias=False)
        if cfg.positions == "learned":
            self.src_positions = LearnedPositionalEmbedding(d, cfg.max_positions)
            self.tgt_positions = LearnedPositionalEmbedding(d, cfg.max_positions)
        else:
            self.src_positions = SinusoidalPositionalEncoding(d, cfg.max_positions)
            self.tgt_positions = self.src_positions
        self.dropout = Dropout(cfg.dropout)
        layer_args = (d, cfg.d_ff, cfg.heads, cfg.d_k, cfg.d_v, cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(cfg.n_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if "embed" in name or "positions" in name:
                continue
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        for emb in {self.src_embed, self.tgt_embed}:
            # N(0, d^-1/2): after the √d scaling the embedded tokens have unit variance.
            nn.init.normal_(emb.weight, mean=0.0, std=self.cfg.d_model**-0.5)
            with torch.no_grad():
                emb.weight[self.pad_id].zero_()

    # -- encoder ---------------------------------------------------------------------------
    def src_mask(self, src: Tensor) -> Tensor:
        """[B, 1, 1, S] bool, True at real (non-pad) source positions."""
        return (src != self.pad_id)[:, None, None, :]

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        mask = self.src_mask(src)
        x = self.src_embed(src) * self.embed_scale + self.src_positions(src.size(1))
        x = self.dropout(x)
        for layer in self.encoder:
            x = layer(x, mask)
        return x, mask

    # -- decoder ---------------------------------------------------------------------------
    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor,
        src_mask: Tensor,
        cache: DecoderCache | None = None,
        start: int = 0,
    ) -> Tensor:
        """Decoder hidden states. With ``cache``, ``tgt_in`` is the token at position ``start``
        only and keys/values of earlier positions come from the cache."""
        y = self.tgt_embed(tgt_in) * self.embed_scale + self.tgt_positions(tgt_in.size(1), start)
        y = self.dropout(y)
        for i, layer in enumerate(self.decoder):
            y = layer(y, memory, src_mask, None if cache is None else cache.layers[i])
        return y

    def new_cache(self) -> DecoderCache:
        return DecoderCache.empty(len(self.decoder))

    def project(self, hidden: Tensor) -> Tensor:
        """Pre-softmax projection: logits over the vocabulary."""
        if self.generator is None:
            # F.linear, not ``hidden @ E.t()``: autocast caches its cast of a parameter for the
            # rest of the autocast region, but not of the transposed view, which beam search
            # would cast afresh at every step (BENCHMARKS.md, "Decoding").
            return F.linear(hidden, self.tgt_embed.weight)
        return self.generator(hidden)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, mask = self.encode(src)
        return self.project(self.decode(tgt_in, memory, mask))


def count_parameters(module: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
