"""Multi-head attention (§3.2) with h, d_k and d_v set independently.

    MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),
    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V,

with W^Q, W^K: d_model → h·d_k, W^V: d_model → h·d_v and W^O: h·d_v → d_model (all with
biases). Table 3 rows A and B vary h and d_k away from d_k = d_v = d_model / h, so nothing here
assumes that. The product runs through ``F.scaled_dot_product_attention``, which picks a fused
kernel (flash / memory-efficient on GPU) where the shapes allow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_transformer.model.cpu_kernels import cpu_kernel


# On CPU, attention is written out as matmul–softmax–matmul: faster than SDPA's CPU paths in
# training and decoding on AVX-512 CPUs, and as fast in training and faster in decoding on AVX2
# CPUs (model/cpu_kernels.py, BENCHMARKS.md). GPUs take SDPA's fused kernels.
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
        if cpu_kernel("decode_attention" if q.size(-2) == 1 else "attention") == "matmul":
            return _cpu_attention(q, k, v, mask, dropout_p, is_causal)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
    )


def _select_and_append(past: Tensor, new: Tensor, order: Tensor | None) -> Tensor:
    """[past[order], new] along time, [B, h, t, d] + [B, h, 1, d]. The rows are selected
    straight into the result: one copy of the cache per step, not a select then a concatenate
    (beam-4 decoding of a partly trained model spent a fifth of its time in those two)."""
    if order is None:
        return torch.cat([past, new], dim=2)
    if past.requires_grad or new.requires_grad:  # out= has no autograd
        return torch.cat([past.index_select(0, order), new], dim=2)
    t = past.size(2)
    out = past.new_empty(order.numel(), past.size(1), t + new.size(2), past.size(3))
    torch.index_select(past, 0, order, out=out[:, :, :t])
    out[:, :, t:] = new
    return out


# A decoding cache for one attention module: {"k": [B, h, t, d_k], "v": [B, h, t, d_v]}, and
# for self-attention the fused projection weights of the current decoding call and the beam
# reorder ("order", [B]) that the next step applies as it appends.
KVCache = dict[str, Tensor]


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

    def _fused_qkv(self, cache: KVCache | None) -> tuple[Tensor, Tensor]:
        """[W^Q; W^K; W^V] and their biases, for one projection matmul. A decoding cache keeps
        them for the rest of its decoding call, in the autocast dtype: autocast caches its
        casts of parameters, not of this concatenation, so every generated token would
        otherwise concatenate and cast them again. The weights cannot change within one call;
        across calls they may (an optimizer step in between), so nothing outlives the cache."""
        if cache is not None and "w_qkv" in cache:
            return cache["w_qkv"], cache["b_qkv"]
        w, b = self._stacked(self.w_q, self.w_k, self.w_v)
        if cache is not None:
            device = w.device.type
            if torch.is_autocast_enabled(device):
                dtype = torch.get_autocast_dtype(device)
                w, b = w.to(dtype), b.to(dtype)
            cache["w_qkv"], cache["b_qkv"] = w, b
        return w, b

    def _split(self, x: Tensor, d: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, d).transpose(1, 2)  # [B, h, T, d]

    def forward(
        self,
        query: Tensor,
        key_value: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        static_kv: bool = False,
    ) -> Tensor:
        """``mask``: bool, broadcastable to [B, h, T_q, T_k], True where attention is allowed.

        ``cache`` enables incremental decoding. Self-attention (``static_kv=False``) appends the
        new keys/values to the cache; encoder–decoder attention (``static_kv=True``) projects
        the encoder output once per sentence and reuses it at every later step.
        """
        b, t, _ = query.shape
        qk, vk = self.heads * self.d_k, self.heads * self.d_v
        reuse = static_kv and cache is not None and "k" in cache
        if key_value is query and not static_kv:
            # Self-attention: one matmul for Q, K and V (fewer, larger GEMMs are faster).
            qkv = F.linear(query, *self._fused_qkv(cache))
            q, k, v = qkv.split([qk, qk, vk], dim=-1)
            q, k, v = self._split(q, self.d_k), self._split(k, self.d_k), self._split(v, self.d_v)
        else:
            q = self._split(self.w_q(query), self.d_k)
            if reuse:
                k, v = cache["k"], cache["v"]
            else:
                kv = F.linear(key_value, *self._stacked(self.w_k, self.w_v))
                k, v = kv.split([qk, vk], dim=-1)
                k, v = self._split(k, self.d_k), self._split(v, self.d_v)
        if cache is not None and not reuse:
            if not static_kv and "k" in cache:
                order = cache.pop("order", None)  # a beam reorder waiting since the last step
                k = _select_and_append(cache["k"], k, order)
                v = _select_and_append(cache["v"], v, order)
            cache["k"], cache["v"] = k, v
        dropout_p = self.attention_dropout if self.training else 0.0
        if reuse and k.size(0) != b:
            return self.w_o(self._grouped_attention(q, k, v, mask, dropout_p))
        out = scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal)
        return self.w_o(out.transpose(1, 2).reshape(b, t, self.heads * self.d_v))

    def _grouped_attention(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float
    ) -> Tensor:
        """Queries of B = n·w rows, sentence-major (row i is sentence i // w: beam search's
        hypotheses), against keys/values of the n sentences. Each sentence's w·T queries attend
        in one product, so its keys/values are read once rather than once per hypothesis (2×
        faster at 340 sentences × 4 beams × 24 source tokens, bf16, on the 2-core CPU)."""
        b, h, t, _ = q.shape
        n = k.size(0)
        w = b // n
        if mask is not None and mask.size(0) == b:  # one mask row per hypothesis: the same w
            mask = mask[::w]
        q = q.view(n, w, h, t, self.d_k).transpose(1, 2).reshape(n, h, w * t, self.d_k)
        out = scaled_dot_product_attention(q, k, v, mask, dropout_p, False)  # [n, h, w·t, d_v]
        out = out.view(n, h, w, t, self.d_v).permute(0, 2, 3, 1, 4)  # [n, w, t, h, d_v]
        return out.reshape(b, t, h * self.d_v)
