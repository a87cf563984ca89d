"""The prepared GPU check runs end to end on the CPU, so a lent GPU's minutes are not spent
finding a bug in the script."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lit_transformer", "gpu-check", *args],
        capture_output=True,
        text=True,
    )


def run_on_cpu(tmp_path, *extra: str) -> dict:
    out = tmp_path / "gpu.json"
    tiny = ["--device", "cpu", "--tokens", "64", "--length", "8", "--steps", "1", "--warmup", "1"]
    proc = gpu_check(*tiny, "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result == json.loads(proc.stdout)
    return result


def test_gpu_check_runs_on_the_cpu(tmp_path):
    result = run_on_cpu(tmp_path)
    loss = result["loss"]
    assert loss["cpu_fp32"] == loss["device_fp32"]  # the same device: the same numbers
    assert loss["fp32_ok"] and loss["bf16_ok"] and not loss["fused_sdpa"]
    speed = result["speed"]
    assert speed["batch_pairs"] == 8 and speed["tgt_tokens_per_step"] == 64
    assert speed["tgt_tokens_per_s"] == pytest.approx(64 / speed["s_per_step"])
    assert speed["hours_for_100k_steps"] == pytest.approx(speed["s_per_step"] * 1e5 / 3600)
    assert 0 < speed["mfu"] < 1 and "speed_compiled" not in result


@pytest.mark.slow
def test_gpu_check_compiled_runs_on_the_cpu(tmp_path):
    assert run_on_cpu(tmp_path, "--compile")["speed_compiled"]["compiled"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_without_a_gpu_is_one_line():
    proc = gpu_check("--steps", "1")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip() == "error: no CUDA device"


def test_gpu_check_rejects_a_batch_smaller_than_a_sentence():
    proc = gpu_check("--device", "cpu", "--tokens", "4", "--length", "8")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip() == "error: --tokens 4 is less than one sentence (8)"
