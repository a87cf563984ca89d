"""The command line keeps freed memory for reuse (glibc), so large tensors cost no page faults."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from lit_transformer.malloc import ENV
from tests.conftest import REPO_ROOT

STEPS = 10
PAGES = 16_000_000 * 4 // 4096  # 15,625 pages of 4 KiB in the 64 MB tensor

SCRIPT = f"""
import resource, torch
from lit_transformer.malloc import reuse_freed_memory
applied = reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for step in range(2 * {STEPS}):  # a training or decoding loop: the same tensors every step
    if step == {STEPS}:  # the heap has settled: count the next {STEPS} steps
        before = faults()
    x = torch.ones(16_000_000)  # 64 MB: above glibc's largest mmap threshold (32 MiB)
    y = torch.ones(4_000_000)
    del x, y
print(applied, faults() - before)
"""


def page_faults_in_a_loop(mode: str) -> tuple[str, int]:
    env = {**os.environ, ENV: mode}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def huge_pages_always() -> bool:
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return thp.is_file() and "[always]" in thp.read_text()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
@pytest.mark.skipif(huge_pages_always(), reason="huge pages fault once per 2 MiB, not 4 KiB")
@pytest.mark.skipif("LD_PRELOAD" in os.environ, reason="another malloc may be preloaded")
def test_freed_large_tensors_are_reused_without_page_faults():
    applied, reused = page_faults_in_a_loop("reuse")
    default_applied, fresh = page_faults_in_a_loop("default")
    assert (applied, default_applied) == ("True", "False")
    assert fresh > 0.8 * STEPS * PAGES  # glibc maps the 64 MB afresh at every step
    assert reused < fresh / 20


def test_a_bad_setting_is_one_line_and_exit_2():
    ablation = REPO_ROOT / "ablations" / "table3-cpu.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "lit_transformer", "params", str(ablation), "--vocab-size", "80"],
        env={**os.environ, ENV: "jemalloc"},
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.strip().splitlines() == [
        f"error: {ENV} must be 'reuse' or 'default', got 'jemalloc'"
    ]
