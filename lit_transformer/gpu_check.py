"""The prepared GPU check (a few minutes on one H100): ``python -m lit_transformer.gpu_check``.

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

import argparse
import json
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from lit_transformer.bench import TrainShape, train_step_flops
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
    torch.manual_seed(0)
    model = Transformer(shape.model_config()).to(device).train()
    kind = torch.device(device).type
    step_model = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
    src, tin, tout = _batch(b, length, length, cfg.vocab_size, device)

    def step() -> None:
        with torch.autocast(kind, dtype=torch.bfloat16):
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
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if kind == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=25000, help="target tokens per batch")
    p.add_argument("--length", type=int, default=32, help="tokens per sentence (both sides)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out")
    args = p.parse_args(argv)
    kind = torch.device(args.device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device")
    if args.tokens < args.length:
        raise SystemExit(f"error: --tokens {args.tokens} is less than one sentence ({args.length})")
    cfg = ModelConfig(vocab_size=37000)
    speed = (args.tokens, args.length, args.steps)
    extra = {"device": args.device, "warmup": args.warmup}
    result = {
        "device": torch.cuda.get_device_name(args.device) if kind == "cuda" else args.device,
        "torch": torch.__version__,
        "loss": check_loss(cfg, args.device),
        "speed": measure_speed(cfg, *speed, False, args.peak_tflops, **extra),
    }
    if args.compile:
        result["speed_compiled"] = measure_speed(cfg, *speed, True, args.peak_tflops, **extra)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
