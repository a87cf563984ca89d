"""Multi-head attention (§3.2) with h, d_k and d_v set independently.

    MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),
    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V,

with W^Q, W^K: d_model → h·d_k, W^V: d_model → h·d_v and W^O: h·d_v → d_model (all with
biases). Table 3 rows A and B vary h and d_k away from d_k = d_v = d_model / h, so nothing here
assumes that. The product runs through ``F.scaled_dot_product_attention``, which picks a fused
kernel (flash / memory-efficient on GPU) where the shapes allow.

Incremental decoding keeps keys/values in the caches of ``model/cache.py``: attention appends
to them and reads them; how a search reorders them is the caches' business.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_transformer.model.cache import MemoryCache, SelfAttentionCache
from lit_transformer.model.cpu_kernels import cpu_kernel


# On CPU, attention is written out as matmul–softmax–matmul: faster than SDPA's CPU paths, or
# as fast, on every CPU measured, but for bf16 decoding on AMX CPUs, where SDPA is faster
# (model/cpu_kernels.py, BENCHMARKS.md). GPUs take SDPA's fused kernels.
def _causal_bias(t: int, device: torch.device) -> Tensor:
    return torch.full((t, t), float("-inf"), device=device).triu_(1)


def _cpu_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, is_causal: bool
) -> Tensor:
    # Scores and softmax in fp32 (CPU autocast would keep them in bf16); a no-op in fp32.
    scores = torch.matmul(q, k.transpose(-2, -1)).float().mul_(q.size(-1) ** -0.5)
    if is_causal:
        scores = scores + _causal_bias(q.size(-2), q.device)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, dropout_p)
    return torch.matmul(probs.to(v.dtype), v)


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, is_causal: bool
) -> Tensor:
    """softmax(Q Kᵀ / √d_k + mask) V; ``mask`` bool (True = attend) or additive float."""
    if q.device.type == "cpu":
        if cpu_kernel("decode_attention" if q.size(-2) == 1 else "attention", q.dtype) == "matmul":
            return _cpu_attention(q, k, v, mask, dropout_p, is_causal)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
    )


class MultiHeadAttention(nn.Module):
    def __init__(
        self, d_model: int, heads: int, d_k: int, d_v: int, attention_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.heads, self.d_k, self.d_v = heads, d_k, d_v
        self.w_q = nn.Linear(d_model, heads * d_k)
        self.w_k = nn.Linear(d_model, heads * d_k)
        self.w_v = nn.Linear(d_model, heads * d_v)
        self.w_o = nn.Linear(heads * d_v, d_model)
        # Not in the paper's description; kept at 0 by default and exposed for experiments.
        self.attention_dropout = attention_dropout

    @staticmethod
    def _stacked(*layers: nn.Linear) -> tuple[Tensor, Tensor]:
        return torch.cat([m.weight for m in layers]), torch.cat([m.bias for m in layers])

    def _fused_qkv(self, cache: SelfAttentionCache | None) -> tuple[Tensor, Tensor]:
        """[W^Q; W^K; W^V] and their biases, for one projection matmul. A decoding cache keeps
        them for the rest of its decoding call, in the autocast dtype: autocast caches its
        casts of parameters, not of this concatenation, so every generated token would
        otherwise concatenate and cast them again. The weights cannot change within one call;
        across calls they may (an optimizer step in between), so nothing outlives the cache."""
        if cache is not None and cache.fused_qkv is not None:
            return cache.fused_qkv
        w, b = self._stacked(self.w_q, self.w_k, self.w_v)
        if cache is not None:
            device = w.device.type
            if torch.is_autocast_enabled(device):
                dtype = torch.get_autocast_dtype(device)
                w, b = w.to(dtype), b.to(dtype)
            cache.fused_qkv = w, b
        return w, b

    def _split(self, x: Tensor, d: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, d).transpose(1, 2)  # [B, h, T, d]

    def _keys_values(self, key_value: Tensor) -> tuple[Tensor, Tensor]:
        kv = F.linear(key_value, *self._stacked(self.w_k, self.w_v))
        k, v = kv.split([self.heads * self.d_k, self.heads * self.d_v], dim=-1)
        return self._split(k, self.d_k), self._split(v, self.d_v)

    def forward(
        self,
        query: Tensor,
        key_value: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: SelfAttentionCache | MemoryCache | None = None,
    ) -> Tensor:
        """``mask``: bool, broadcastable to [B, h, T_q, T_k], True where attention is allowed.

        ``cache`` enables incremental decoding. A :class:`SelfAttentionCache` gets the new
        keys/values appended and attends over all of them; a :class:`MemoryCache` is filled
        from ``key_value`` (the encoder output) on the first call and read on later ones.
        """
        if isinstance(cache, MemoryCache):
            return self._attend_memory(query, key_value, mask, cache)
        b, t, _ = query.shape
        if key_value is query:
            # Self-attention: one matmul for Q, K and V (fewer, larger GEMMs are faster).
            qk, vk = self.heads * self.d_k, self.heads * self.d_v
            q, k, v = F.linear(query, *self._fused_qkv(cache)).split([qk, qk, vk], dim=-1)
            q, k, v = self._split(q, self.d_k), self._split(k, self.d_k), self._split(v, self.d_v)
        else:
            q = self._split(self.w_q(query), self.d_k)
            k, v = self._keys_values(key_value)
        if cache is not None:
            k, v = cache.append(k, v)
        out = scaled_dot_product_attention(q, k, v, mask, self._dropout_p(), is_causal)
        return self.w_o(out.transpose(1, 2).reshape(b, t, self.heads * self.d_v))

    def _attend_memory(
        self, query: Tensor, memory: Tensor, mask: Tensor | None, cache: MemoryCache
    ) -> Tensor:
        """Encoder–decoder attention with the memory's keys/values projected once per call.
        The cache lays the queries out against its rows of keys/values (several decoder rows
        may share one) and back."""
        q = self._split(self.w_q(query), self.d_k)
        if cache.k is None or cache.v is None:
            k, v = cache.store(*self._keys_values(memory))
        else:
            k, v = cache.k, cache.v
        q, mask = cache.group_queries(q, mask)
        out = scaled_dot_product_attention(q, k, v, mask, self._dropout_p(), False)
        return self.w_o(cache.ungroup(out))

    def _dropout_p(self) -> float:
        return self.attention_dropout if self.training else 0.0
