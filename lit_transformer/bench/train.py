"""``bench train``: a training step of ours against a plain ``nn.Transformer`` loop, and the
fraction of the measured matmul peak it reaches.

FLOPs of one training step (matmuls only; backward = 2 × forward), for N layers, batch B,
source length S, target length T, h·d_k = a_k, h·d_v = a_v:

    encoder, per source token:  2·d·(2·a_k + a_v) + 2·a_v·d      (Q, K, V, O projections)
                                + 2·S·(a_k + a_v)                 (QKᵀ and AV)
                                + 4·d·d_ff                        (FFN)
    decoder, per target token:  the same with T for self-attention, plus encoder–decoder
                                attention: 2·d·a_k + 2·a_v·d (Q, O) + 2·S·(a_k + a_v),
                                and 2·d·(a_k + a_v) per *source* token for its K, V
    output projection:          2·d·V per target token
    step = 3 · B · (S·enc + T·dec + S·N·2·d·(a_k + a_v) + T·2·d·V)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lit_transformer.config import ModelConfig
from lit_transformer.model.transformer import Transformer
from lit_transformer.training.loss import label_smoothed_loss
from lit_transformer.training.module import build_adam


@dataclass
class TrainShape:
    d_model: int = 256
    heads: int = 4
    layers: int = 3
    d_ff: int = 1024
    vocab_size: int = 8000
    batch_size: int = 64
    src_len: int = 20
    tgt_len: int = 20
    precision: str = "auto"  # resolved by bench_train (lit_transformer/precision.py)

    @property
    def d_k(self) -> int:
        return self.d_model // self.heads

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            n_layers=self.layers,
            d_model=self.d_model,
            d_ff=self.d_ff,
            heads=self.heads,
            d_k=self.d_k,
            d_v=self.d_k,
            vocab_size=self.vocab_size,
        )


def train_step_flops(s: TrainShape) -> float:
    d, ff, n, v = s.d_model, s.d_ff, s.layers, s.vocab_size
    ak = av = s.heads * s.d_k
    proj = 2 * d * (2 * ak + av) + 2 * av * d
    enc = proj + 2 * s.src_len * (ak + av) + 4 * d * ff
    dec = proj + 2 * s.tgt_len * (ak + av) + 4 * d * ff
    dec += 2 * d * ak + 2 * av * d + 2 * s.src_len * (ak + av)
    cross_kv = 2 * d * (ak + av)
    fwd = s.batch_size * (
        n * s.src_len * enc + n * s.tgt_len * dec + n * s.src_len * cross_kv + s.tgt_len * 2 * d * v
    )
    return 3.0 * fwd


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured dense matmul FLOP/s for ``dtype`` on this machine."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


class PlainTransformer(nn.Module):
    """The reference: ``nn.Transformer`` with embeddings and an output layer, same size."""

    def __init__(self, s: TrainShape) -> None:
        super().__init__()
        self.embed = nn.Embedding(s.vocab_size, s.d_model)
        self.core = nn.Transformer(
            s.d_model, s.heads, s.layers, s.layers, s.d_ff, dropout=0.1, batch_first=True
        )
        self.out = nn.Linear(s.d_model, s.vocab_size, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mask = self.core.generate_square_subsequent_mask(tgt.size(1))
        h = self.core(self.embed(src), self.embed(tgt), tgt_mask=mask, tgt_is_causal=True)
        return self.out(h)


def plain_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """What a hand-written loop uses: torch's label-smoothed cross-entropy."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        target.reshape(-1),
        ignore_index=0,
        label_smoothing=0.1,
    )


def ours_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return label_smoothed_loss(logits, target, 0.1, 0)


def _step_fn(
    model: nn.Module, s: TrainShape, batch: tuple, opt: torch.optim.Optimizer, loss_fn: Any
) -> Any:
    src, tgt_in, tgt_out = batch
    bf16 = s.precision == "bf16-mixed"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt_in)
            loss = loss_fn(logits, tgt_out)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_train(s: TrainShape, steps: int = 10, rounds: int = 3) -> dict[str, Any]:
    """Our model vs plain ``nn.Transformer``, measured alternately ``rounds`` times, at the
    resolved precision (``auto``: bf16-mixed only where bf16 matmuls are fast)."""
    from lit_transformer.precision import cpu_description, resolve

    requested = s.precision
    s.precision, why = resolve(s.precision, "cpu")
    torch.manual_seed(0)
    cfg = s.model_config()
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randint(4, s.vocab_size, (s.batch_size, s.src_len), generator=g),
        torch.randint(4, s.vocab_size, (s.batch_size, s.tgt_len), generator=g),
        torch.randint(4, s.vocab_size, (s.batch_size, s.tgt_len), generator=g),
    )
    ours = Transformer(cfg).train()
    plain = PlainTransformer(s).train()
    # Each loop with its own optimizer and loss: ours are the ones fit uses; the plain loop
    # has torch's default Adam and F.cross_entropy, as a hand-written loop would.
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    runs = {
        "ours": _step_fn(ours, s, batch, build_adam(ours.parameters(), lr=1e-4), ours_loss),
        "plain_pytorch": _step_fn(plain, s, batch, plain_opt, plain_loss),
    }
    for fn in runs.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t) / steps)
    flops = train_step_flops(s)
    peak = matmul_peak(torch.bfloat16 if s.precision == "bf16-mixed" else torch.float32)
    tokens = s.batch_size * s.tgt_len
    out: dict[str, Any] = {
        "shape": s.__dict__,
        "cpu": cpu_description(),
        "threads": torch.get_num_threads(),
        "precision": s.precision,
        "precision_requested": requested,
        "precision_reason": why,
        "flops_per_step": flops,
        "matmul_peak": peak,
    }
    for name, ts in times.items():
        sec = statistics.median(ts)
        out[name] = {
            "s_per_step": sec,
            "tgt_tokens_per_s": tokens / sec,
            "flops_per_s": flops / sec,
            "fraction_of_peak": flops / sec / peak,
        }
    # Per round, the two loops ran back to back: their ratio is robust to the VM's drift.
    ratios = [p / o for p, o in zip(times["plain_pytorch"], times["ours"], strict=True)]
    out["speedup_per_round"] = ratios
    out["speedup_vs_plain"] = statistics.median(ratios)
    return out
