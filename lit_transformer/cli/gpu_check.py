"""``gpu-check``: the prepared GPU check (loss on CPU vs GPU, training speed and MFU)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lit_transformer.config import ConfigError

SUMMARY = "the prepared GPU check: loss on CPU vs GPU, base-model training speed and MFU"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--tokens", type=int, default=25000, help="target tokens per batch")
    p.add_argument("--length", type=int, default=32, help="tokens per sentence (both sides)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="989: an H100 SXM, dense")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out")


def run(args: argparse.Namespace) -> int:
    import torch

    from lit_transformer.bench.gpu import check_loss, measure_speed
    from lit_transformer.config import ModelConfig

    kind = torch.device(args.device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("no CUDA device")
    if args.tokens < args.length:
        raise ConfigError(f"--tokens {args.tokens} is less than one sentence ({args.length})")
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
    return 0
