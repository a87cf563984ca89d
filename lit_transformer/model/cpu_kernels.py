"""Kernel choices on the CPU, one place for all of them, with an override for A/B runs.

Two parts of the model have a hand-written CPU path beside the library's: attention
(``matmul``: matmul–softmax–matmul, instead of ``sdpa``: ``F.scaled_dot_product_attention``)
and dropout (``threshold``: thresholding ``rand_like``, instead of ``bernoulli``: ``F.dropout``).
Each was measured on three kinds of CPU: AVX2 only, AVX-512 with AVX512_BF16, and AVX-512 with
AMX (``lit-transformer bench choices`` for the kernels alone, whole training steps and whole
decodes with each choice; BENCHMARKS.md, "CPU kernel choices"). The hand-written paths are
faster or equal everywhere but in one place, so that place has a rule of its own, decided from
the CPU's flags (a deterministic rule rather than a timing probe, so one machine always runs
the same kernels and the same floating-point sums):

- ``decode_attention`` for **bf16** inputs (a bf16 checkpoint decoding where bf16 is fast) on a
  CPU with AMX tiles (``amx_bf16``): SDPA, whose bf16 path is faster there in whole beam
  searches; matmul–softmax–matmul everywhere else (in bf16 on an AVX512_BF16 CPU without AMX,
  SDPA's decoding path is the slower one, and in fp32 it is slower on every kind).

``LIT_TRANSFORMER_CPU_KERNELS="attention=sdpa,dropout=bernoulli"`` overrides any of them:
``attention`` (training and teacher-forced scoring), ``decode_attention`` (one query per step,
beam search; in every dtype, the rule above included), ``dropout``.
"""

from __future__ import annotations

import functools
import os

import torch

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


BF16_DECODE = "decode_attention (bf16)"  # the key of the rule's choice in choices()


def has_amx_bf16() -> bool:
    """Whether the CPU has AMX tiles for bf16 (``amx_bf16`` in ``/proc/cpuinfo``)."""
    from lit_transformer.precision import cpu_flags

    return "amx_bf16" in (cpu_flags() or set())


@functools.lru_cache(maxsize=1)
def choices() -> dict[str, str]:
    """This process's CPU kernel choices (read once): each name's, and bf16 decoding's."""
    explicit = _overrides()
    chosen = {**DEFAULTS, **explicit}
    rule = "sdpa" if has_amx_bf16() else chosen["decode_attention"]
    chosen[BF16_DECODE] = explicit.get("decode_attention", rule)
    return chosen


def cpu_kernel(name: str, dtype: torch.dtype | None = None) -> str:
    """The kernel ``name`` runs here; ``dtype``: its inputs' (bf16 decoding has its rule)."""
    if name == "decode_attention" and dtype == torch.bfloat16:
        return choices()[BF16_DECODE]
    return choices()[name]
