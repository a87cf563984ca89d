"""Numeric precision, chosen from the machine: ``auto`` is bf16-mixed where bf16 is fast, else 32.

A bf16 matmul is only fast on hardware that has bf16 arithmetic: a CUDA GPU that reports bf16
support, or a CPU with AVX512_BF16 or AMX. Elsewhere oneDNN emulates it, ~100x slower than fp32
(BENCHMARKS.md, "AVX2"), so a hard-coded bf16-mixed would train ~100x slower there. The CPU
decision is two-staged:

1. the CPU's flags (``/proc/cpuinfo``): no ``avx512_bf16`` and no ``amx_bf16`` ⇒ slow, with
   no timing at all;
2. otherwise (flags present, or no ``/proc/cpuinfo``) a timing probe, once per process: one
   512x512 matmul in bf16 against fp32; bf16 is *fast* when its throughput is at least fp32's.

``LIT_TRANSFORMER_CPU_BF16=fast|slow`` overrides both (and is how a process hands its answer to
the DDP ranks it launches, so every rank resolves alike). The resolved precision is what runs,
what a checkpoint and ``result.json`` record, and what a sweep pins for its whole study
(``sweep/orchestrator.py``).
"""

from __future__ import annotations

import functools
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from lit_transformer.errors import ConfigError

BF16_ENV = "LIT_TRANSFORMER_CPU_BF16"
AUTO = "auto"
TRAIN_PRECISIONS = (AUTO, "32", "bf16-mixed", "16-mixed", "bf16-true")
DECODE_PRECISIONS = (AUTO, "32", "bf16-mixed")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
PROBE_SIZE = 512


def normalize(value: object, accepted: tuple[str, ...] = TRAIN_PRECISIONS, what: str = "precision"):
    """``value`` as one of ``accepted`` (YAML reads ``32`` as an integer), else a one-line error."""
    if isinstance(value, bool):
        text = None
    elif isinstance(value, int | float) and float(value).is_integer():
        text = str(int(value))
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = None
    if text in ("32-true", "32"):
        text = "32"
    if text not in accepted:
        raise ConfigError(f"{what} must be one of {', '.join(accepted)}; got {value!r}")
    return text


@dataclass(frozen=True)
class Bf16Verdict:
    """Whether bf16 matmuls are fast on one device, and why we think so."""

    fast: bool
    reason: str
    fp32_gflops: float | None = None  # measured by the timing probe, when it ran
    bf16_gflops: float | None = None


def _cpuinfo(key: str) -> str | None:
    """The value of the first ``key`` line of ``/proc/cpuinfo`` (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (None where there is none)."""
    flags = _cpuinfo("flags")
    return None if flags is None else set(flags.split())


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_description() -> str:
    """CPU model, torch's kernel capability and the bf16 flags: stated beside every figure."""
    import torch

    flags = cpu_flags()
    bf16 = "n/a" if flags is None else ",".join(f for f in _BF16_FLAGS if f in flags) or "none"
    return (
        f"{cpu_model()} ({os.cpu_count()} cores, torch capability "
        f"{torch.backends.cpu.get_cpu_capability()}, bf16 flags: {bf16})"
    )


def time_matmuls(n: int = PROBE_SIZE) -> tuple[float, float]:
    """(fp32, bf16) GFLOP/s of one n x n matmul, best of a few; bf16 stops after one run when
    it is already far slower (a slow bf16 matmul at 512 takes ~0.2 s)."""
    import torch

    flop = 2.0 * n**3

    def best(dtype: torch.dtype, reps: int, slow_after: float | None) -> float:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        a @ b  # warm-up: oneDNN picks and packs its kernel
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
            if slow_after is not None and times[-1] > slow_after:
                break
        return flop / min(times) / 1e9

    fp32 = best(torch.float32, 5, None)
    bf16 = best(torch.bfloat16, 5, slow_after=4 * flop / (fp32 * 1e9))
    return fp32, bf16


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> Bf16Verdict:
    forced = os.environ.get(BF16_ENV, "").strip().lower()
    if forced in ("fast", "slow"):
        return Bf16Verdict(forced == "fast", f"{BF16_ENV}={forced}")
    if forced not in ("", "probe"):
        raise ConfigError(f"{BF16_ENV} must be fast, slow or probe; got {forced!r}")
    flags = cpu_flags()
    if forced != "probe" and flags is not None and not flags & set(_BF16_FLAGS):
        return Bf16Verdict(False, "CPU has no avx512_bf16/amx_bf16: bf16 matmuls are emulated")
    fp32, bf16 = time_matmuls()
    return Bf16Verdict(
        bf16 >= fp32,
        f"{PROBE_SIZE}^3 matmul: bf16 {bf16:.1f} vs fp32 {fp32:.1f} GFLOP/s",
        fp32,
        bf16,
    )


def cuda_bf16() -> Bf16Verdict:
    import torch

    if torch.cuda.is_bf16_supported(including_emulation=False):
        return Bf16Verdict(True, f"{torch.cuda.get_device_name()} supports bf16")
    return Bf16Verdict(False, f"{torch.cuda.get_device_name()} has no native bf16")


def uses_cuda(accelerator: str = "auto") -> bool:
    import torch

    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def bf16_verdict(accelerator: str = "auto") -> Bf16Verdict:
    return cuda_bf16() if uses_cuda(accelerator) else cpu_bf16()


def resolve(requested: object, accelerator: str = "auto") -> tuple[str, str]:
    """(precision, why): an explicit precision as it is; ``auto`` from the device's bf16."""
    precision = normalize(requested, what="trainer.precision")
    if precision != AUTO:
        return precision, "explicit"
    verdict = bf16_verdict(accelerator)
    return ("bf16-mixed" if verdict.fast else "32"), f"auto: {verdict.reason}"


def slow_precision_warning(precision: str, accelerator: str = "auto") -> str | None:
    """One line when ``precision`` (pinned elsewhere) runs bf16 on hardware where it is slow."""
    if not precision.startswith("bf16"):
        return None
    verdict = bf16_verdict(accelerator)
    if verdict.fast:
        return None
    return f"warning: {precision} is slow on this machine ({verdict.reason}); it is kept as pinned"


def share_with_children(accelerator: str = "auto") -> None:
    """Put this process's CPU verdict in the environment, so processes it launches (Lightning's
    DDP ranks) resolve ``auto`` alike without probing again."""
    if not uses_cuda(accelerator):
        os.environ[BF16_ENV] = "fast" if cpu_bf16().fast else "slow"


def decode_precision(trained: str, requested: str | None, device_type: str = "cpu") -> str:
    """Decoding precision: ``requested``, or under ``auto`` bf16 autocast for a bf16-trained
    model where bf16 is fast on ``device_type``, else fp32 (fp16 is no use on CPUs)."""
    precision = normalize(
        AUTO if requested is None else requested, DECODE_PRECISIONS, "decoding precision"
    )
    if precision != AUTO:
        return precision
    if not str(trained).startswith("bf16") and str(trained) != AUTO:
        return "32"
    verdict = bf16_verdict("cuda" if device_type == "cuda" else "cpu")
    return "bf16-mixed" if verdict.fast else "32"
