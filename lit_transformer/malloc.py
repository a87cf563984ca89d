"""Keep freed memory in the process for reuse, instead of giving it back to the kernel.

glibc serves an allocation above its mmap threshold (128 KiB at first, raised as mapped blocks
are freed, to at most 32 MiB) with a fresh ``mmap`` and unmaps it again on ``free``. Training
and beam search allocate tensors that large at every step (a [tokens, vocab] fp32 logits
matrix is 65 MB at 2,048 tokens × 8,000), so every step paid one page fault per 4 KiB page to
get zeroed memory from the kernel (BENCHMARKS.md, "Freed memory kept for reuse").

With mmap off (``M_MMAP_MAX`` 0) and a 2 GiB trim threshold, freed blocks go back to malloc's
free lists and the next step reuses them: the caching that PyTorch's GPU allocator does, and
that jemalloc or tcmalloc (PyTorch's CPU tuning guide suggests them) would give through
``LD_PRELOAD``. The costs: the process keeps its peak heap until it exits, and fragmentation
can push that above the peak of live tensors. It helps allocations of the main thread, where
CPU training and decoding allocate; glibc still maps blocks of 64 MiB or more in other
threads. The settings override ``MALLOC_MMAP_MAX_`` and ``MALLOC_TRIM_THRESHOLD_`` from the
environment.

``LIT_TRANSFORMER_MALLOC=default`` leaves glibc's settings alone. Other C libraries (musl,
macOS) are left alone too.
"""

from __future__ import annotations

import ctypes
import os
import sys

from lit_transformer.config import ConfigError

ENV = "LIT_TRANSFORMER_MALLOC"
M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB


def reuse_freed_memory() -> bool:
    """Set glibc's malloc to keep and reuse large freed blocks; True where it took effect.

    Process-wide and inherited by forked children (not by spawned ones, which start a fresh
    interpreter). The command line calls it first, so sweep trials and the ranks of
    Lightning's ``ddp``, which runs the command line again, have it too."""
    mode = os.environ.get(ENV, "reuse")
    if mode not in ("reuse", "default"):
        raise ConfigError(f"{ENV} must be 'reuse' or 'default', got {mode!r}")
    if mode == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mmap_off = mallopt(M_MMAP_MAX, 0)
    keep = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mmap_off) and bool(keep)
