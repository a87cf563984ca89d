"""Benchmarks: training throughput against plain PyTorch, decoding with and without the KV
cache, and batching efficiency. Speed goals live here, not in timed tests.

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


def bench_decode(
    ckpt: str,
    data_root: str | None = None,
    split: str = "test",
    beam: int = 4,
    limit: int | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """Sentences/s of beam search on a real test set, with and without the KV cache, and the
    matmul peak measured right after (the VM's speed drifts: compare within one run)."""
    from lit_transformer.data.corpora import load_split, resolve_data_root
    from lit_transformer.decoding.translate import Translator, load_module
    from lit_transformer.evaluation import corpus_bleu
    from lit_transformer.precision import cpu_description

    module = load_module(ckpt)
    d = module.cfg.data
    srcs, refs = load_split(resolve_data_root(data_root), d.corpus, split, d.src_lang, d.tgt_lang)
    if limit:
        srcs, refs = srcs[:limit], refs[:limit]
    translator = Translator(module, precision=precision)
    out: dict[str, Any] = {
        "checkpoint": ckpt,
        "split": split,
        "sentences": len(srcs),
        "beam": beam,
        "precision": translator.precision,
        "trained_precision": module.cfg.trainer.precision,
        "cpu": cpu_description(),
        "threads": torch.get_num_threads(),
    }
    translator.translate(srcs[:50], beam=beam)  # warm-up: first calls allocate and dispatch
    hyps = {}
    for use_cache in (True, False):
        t = time.perf_counter()
        hyps[use_cache] = translator.translate(srcs, beam=beam, use_cache=use_cache)
        sec = time.perf_counter() - t
        key = "cached" if use_cache else "uncached"
        out[key] = {
            "seconds": sec,
            "sentences_per_s": len(srcs) / sec,
            "bleu": corpus_bleu(hyps[use_cache], refs).score,
        }
    out["identical_output"] = hyps[True] == hyps[False]
    out["cache_speedup"] = out["uncached"]["seconds"] / out["cached"]["seconds"]
    out["matmul_peak_fp32"] = matmul_peak(torch.float32)
    return out


def bench_batching(
    corpus: str = "multi30k",
    vocab_size: int = 8000,
    max_tokens: int = 2048,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Real-token fraction of an epoch of training batches under the token budget."""
    from lit_transformer.data.datamodule import TranslationDataModule
    from lit_transformer.data.sampler import TokenBudgetBatchSampler

    dm = TranslationDataModule(
        corpus=corpus, data_root=data_root, vocab_size=vocab_size, max_tokens=max_tokens
    )
    dm.setup("fit")
    ds = dm.dataset("train")
    sampler = TokenBudgetBatchSampler(ds.src_lens, ds.tgt_lens, max_tokens, seed=0)
    batches = sampler.epoch_batches()
    real = padded = 0
    for batch in batches:
        s = [int(ds.src_lens[i]) for i in batch]
        t = [int(ds.tgt_lens[i]) for i in batch]
        real += sum(s) + sum(t)
        padded += len(batch) * (max(s) + max(t))
    return {
        "corpus": corpus,
        "vocab_size": vocab_size,
        "max_tokens": max_tokens,
        "pairs": len(ds),
        "batches": len(batches),
        "real_token_fraction": real / padded,
        "mean_pairs_per_batch": len(ds) / len(batches),
    }


def _best_ms(fn: Any, reps: int) -> float:
    """Median wall time of ``fn`` in ms after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def bench_choices(precision: str = "auto", reps: int = 20) -> dict[str, Any]:
    """Each CPU-specific kernel choice of the package against the library's alternative, at
    the shapes of the CPU-scale base (d_model 256, h 4, batches of ~2,048 tokens), on this
    machine: ``ours_ms`` / ``alternative_ms`` and their ratio (> 1: ours is faster).

    - attention: matmul–softmax–matmul (``model/attention.py``) vs SDPA
      (training fwd+bwd with a padding mask, causal fwd+bwd, one decoding query against 20 keys);
    - dropout: thresholding ``rand_like`` (``model/dropout.py``) vs ``F.dropout`` (``bernoulli_``);
    - loss: the fused label-smoothed CE (``training/loss.py``) vs ``F.cross_entropy``, fwd+bwd.
    """
    from lit_transformer.model.attention import _cpu_attention
    from lit_transformer.model.dropout import threshold_dropout
    from lit_transformer.precision import cpu_description, resolve

    resolved, why = resolve(precision, "cpu")
    bf16 = resolved == "bf16-mixed"
    torch.manual_seed(0)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def attention_case(b: int, t_q: int, t_k: int, causal: bool, backward: bool) -> tuple:
        q = torch.randn(b, 4, t_q, 64, requires_grad=backward)
        k = torch.randn(b, 4, t_k, 64, requires_grad=backward)
        v = torch.randn(b, 4, t_k, 64, requires_grad=backward)
        mask = None if causal else (torch.rand(b, 1, 1, t_k) > 0.1)

        def run(fn: Any) -> Any:
            def step() -> None:
                with autocast():
                    out = fn(q, k, v, mask, causal)
                if backward:
                    out.float().sum().backward()

            return step

        ours = run(lambda q, k, v, m, c: _cpu_attention(q, k, v, m, 0.0, c))
        sdpa = run(
            lambda q, k, v, m, c: F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=c)
        )
        return ours, sdpa

    cases: dict[str, tuple] = {
        "attention, training, padding mask (64x4x20x64)": attention_case(64, 20, 20, False, True),
        "attention, training, causal (64x4x20x64)": attention_case(64, 20, 20, True, True),
        "attention, decoding query vs 20 keys (440 rows)": attention_case(440, 1, 20, False, False),
    }
    x = torch.randn(128, 16, 1024)
    cases["dropout 0.1 (128x16x1024)"] = (
        lambda: threshold_dropout(x, 0.1),
        lambda: F.dropout(x, 0.1, True),
    )
    logits = torch.randn(1280, 8000, requires_grad=True)
    target = torch.randint(4, 8000, (1280,))
    lg = logits.bfloat16().detach().requires_grad_() if bf16 else logits

    def fused() -> None:
        label_smoothed_loss(lg, target, 0.1, 0).backward()

    def plain() -> None:
        F.cross_entropy(lg.float(), target, ignore_index=0, label_smoothing=0.1).backward()

    cases["label-smoothed CE fwd+bwd (1280x8000)"] = (fused, plain)
    out: dict[str, Any] = {
        "cpu": cpu_description(),
        "threads": torch.get_num_threads(),
        "precision": resolved,
        "precision_reason": why,
        "choices": {},
    }
    for name, (ours_fn, alt_fn) in cases.items():
        # Alternate the two, so the VM's drift hits both alike.
        ours_ms, alt_ms = [], []
        for _ in range(3):
            ours_ms.append(_best_ms(ours_fn, reps))
            alt_ms.append(_best_ms(alt_fn, reps))
        o, a = statistics.median(ours_ms), statistics.median(alt_ms)
        out["choices"][name] = {"ours_ms": o, "alternative_ms": a, "speedup": a / o}
    return out
