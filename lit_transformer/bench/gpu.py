"""The prepared GPU check (a few minutes on one H100): ``lit-transformer gpu-check``.

1. Correctness: the paper's base model, same weights and batch, loss on the CPU in fp32 vs on
   the GPU in fp32 and under bf16 autocast (fused SDPA kernels), within tolerance.
2. Speed: training steps of the paper's base (N 6, d 512, d_ff 2048, h 8, V 37000) at a
   ~25k-token batch in bf16-mixed, optionally ``torch.compile``d: target tokens/s and MFU
   against the GPU's dense bf16 peak (``--peak-tflops``, 989 for an H100 SXM).
Prints one JSON object (and writes it to ``--out`` if given). Needs no data: batches are
random token ids of realistic lengths. The bf16 loss runs with SDPA restricted to its fused
kernels (flash, memory-efficient): ``fused_sdpa`` says whether every attention call found one
(if not, the error is reported and the loss computed again with any kernel).
``--device cpu`` with a tiny ``--tokens`` runs the same code on the CPU: the test suite does,
so the script is known to run before a GPU's minutes are spent on it.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from lit_transformer.bench.train import TrainShape, train_step_flops
from lit_transformer.config import ModelConfig
from lit_transformer.model.transformer import Transformer
from lit_transformer.training.loss import label_smoothed_loss


def _batch(b: int, s: int, t: int, v: int, device: str) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randint(4, v, (b, n), generator=g).to(device) for n in (s, t, t))


def fused_attention_only(device: str) -> AbstractContextManager:
    """SDPA's fused kernels only, on a GPU (the CPU path does not use SDPA)."""
    if device == "cpu":
        return nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION])


def check_loss(cfg: ModelConfig, device: str) -> dict[str, float | bool | str]:
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    src, tin, tout = _batch(16, 24, 24, cfg.vocab_size, "cpu")
    kind = torch.device(device).type
    fused: dict[str, bool | str] = {"fused_sdpa": kind != "cpu"}
    with torch.no_grad():
        cpu = label_smoothed_loss(model(src, tin), tout, 0.1, 0).item()
        dev_model = model.to(device)
        src, tin, tout = (x.to(device) for x in (src, tin, tout))
        fp32 = label_smoothed_loss(dev_model(src, tin), tout, 0.1, 0).item()
        with torch.autocast(kind, dtype=torch.bfloat16):
            try:
                with fused_attention_only(kind):
                    bf16 = label_smoothed_loss(dev_model(src, tin), tout, 0.1, 0).item()
            except RuntimeError as exc:  # no fused kernel for some call: say so, go on
                fused = {"fused_sdpa": False, "fused_sdpa_error": str(exc).splitlines()[0]}
                bf16 = label_smoothed_loss(dev_model(src, tin), tout, 0.1, 0).item()
    return {
        "cpu_fp32": cpu,
        "device_fp32": fp32,
        "device_bf16": bf16,
        "fp32_ok": abs(cpu - fp32) < 1e-3 * abs(cpu),
        "bf16_ok": abs(cpu - bf16) < 2e-2 * abs(cpu),
        **fused,
    }


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure_speed(
    cfg: ModelConfig,
    tokens: int,
    length: int,
    steps: int,
    compile_: bool,
    peak: float,
    device: str = "cuda",
    warmup: int = 5,
) -> dict[str, float]:
    b = tokens // length
    shape = TrainShape(
        d_model=cfg.d_model,
        heads=cfg.heads,
        layers=cfg.n_layers,
        d_ff=cfg.d_ff,
        vocab_size=cfg.vocab_size,
        batch_size=b,
        src_len=length,
        tgt_len=length,
    )
    from lit_transformer.precision import resolve

    torch.manual_seed(0)
    model = Transformer(shape.model_config()).to(device).train()
    kind = torch.device(device).type
    # bf16-mixed on a bf16 GPU; on a CPU whatever `auto` picks there (fp32 where bf16 is slow,
    # so the CPU rehearsal of this check does not take minutes a step).
    precision, _ = resolve("auto", "gpu" if kind == "cuda" else "cpu")
    step_model = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
    src, tin, tout = _batch(b, length, length, cfg.vocab_size, device)

    def step() -> None:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = label_smoothed_loss(step_model(src, tin), tout, 0.1, 0)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    sec = (time.perf_counter() - t) / steps
    flops = train_step_flops(shape)
    return {
        "batch_pairs": b,
        "tgt_tokens_per_step": b * length,
        "s_per_step": sec,
        "tgt_tokens_per_s": b * length / sec,
        "tflops": flops / sec / 1e12,
        "mfu": flops / sec / (peak * 1e12),
        "hours_for_100k_steps": sec * 1e5 / 3600,
        "compiled": compile_,
        "precision": precision,
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if kind == "cuda" else None,
    }
