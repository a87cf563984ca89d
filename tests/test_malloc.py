"""The command line keeps freed memory for reuse (glibc), so large tensors cost no page faults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lit_transformer.malloc import ENV
from tests.conftest import REPO_ROOT

SCRIPT = """
import resource, torch
from lit_transformer.malloc import reuse_freed_memory
applied = reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for step in range(10):  # a training or decoding loop: the same large tensors at every step
    if step == 5:
        before = faults()
    x = torch.ones(16_000_000)  # 64 MB: above glibc's largest mmap threshold (32 MiB)
    y = torch.ones(4_000_000)
    del x, y
print(applied, faults() - before)  # the last five steps'
"""


def page_faults_in_a_loop(mode: str) -> tuple[str, int]:
    env = {**os.environ, ENV: mode}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_freed_large_tensors_are_reused_without_page_faults():
    applied, reused = page_faults_in_a_loop("reuse")
    default_applied, fresh = page_faults_in_a_loop("default")
    assert (applied, default_applied) == ("True", "False")
    assert fresh > 5 * 15_000  # 19,531 pages of 4 KiB a step mapped afresh, a fault each
    assert reused < 1_000


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
