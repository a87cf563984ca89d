"""Kernel choices on the CPU, one place for all of them, with an override for A/B runs.

Two parts of the model have a hand-written CPU path beside the library's: attention
(``matmul``: matmul–softmax–matmul, instead of ``sdpa``: ``F.scaled_dot_product_attention``)
and dropout (``threshold``: thresholding ``rand_like``, instead of ``bernoulli``: ``F.dropout``).
Both were measured on an AVX-512/bf16 CPU and on an AVX2-only CPU (``lit-transformer bench
choices`` for the kernels alone, and whole training steps with each choice; BENCHMARKS.md,
"CPU kernel choices"). The hand-written paths were faster or equal on both kinds, so the
defaults do not depend on the CPU; were that to change, the choice belongs in ``choices()``,
decided from ``torch.backends.cpu.get_cpu_capability()`` (a deterministic rule rather than a
timing probe, so one machine always runs the same kernels and the same floating-point sums).

``LIT_TRANSFORMER_CPU_KERNELS="attention=sdpa,dropout=bernoulli"`` overrides any of them:
``attention`` (training and teacher-forced scoring), ``decode_attention`` (one query per step,
beam search), ``dropout``.
"""

from __future__ import annotations

import functools
import os

from lit_transformer.config import ConfigError

KERNELS_ENV = "LIT_TRANSFORMER_CPU_KERNELS"
OPTIONS = {
    "attention": ("matmul", "sdpa"),
    "decode_attention": ("matmul", "sdpa"),
    "dropout": ("threshold", "bernoulli"),
}
DEFAULTS = {"attention": "matmul", "decode_attention": "matmul", "dropout": "threshold"}


def _overrides() -> dict[str, str]:
    text = os.environ.get(KERNELS_ENV, "").strip()
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = (x.strip() for x in part.partition("="))
        if value not in OPTIONS.get(name, ()):
            choices = "; ".join(f"{k}={'|'.join(v)}" for k, v in OPTIONS.items())
            raise ConfigError(f"{KERNELS_ENV}: bad entry {part!r} (choices: {choices})")
        out[name] = value
    return out


@functools.lru_cache(maxsize=1)
def choices() -> dict[str, str]:
    """This process's CPU kernel choices (read once)."""
    return {**DEFAULTS, **_overrides()}


def cpu_kernel(name: str) -> str:
    return choices()[name]
