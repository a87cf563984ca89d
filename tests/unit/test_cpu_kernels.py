"""CPU kernel choices: defaults, the override, and that each choice computes
the same function (attention values and gradients, dropout's distribution)."""

from __future__ import annotations

import pytest
import torch

from lit_transformer.config import ConfigError
from lit_transformer.model import cpu_kernels
from lit_transformer.model.attention import MultiHeadAttention
from lit_transformer.model.dropout import Dropout


@pytest.fixture
def kernels(monkeypatch):
    def use(text: str) -> None:
        monkeypatch.setenv(cpu_kernels.KERNELS_ENV, text)
        cpu_kernels.choices.cache_clear()

    yield use
    cpu_kernels.choices.cache_clear()


def test_the_override_wins_over_the_defaults(kernels):
    kernels("")
    assert {k: cpu_kernels.choices()[k] for k in cpu_kernels.DEFAULTS} == cpu_kernels.DEFAULTS
    kernels("attention=matmul, dropout=threshold")
    assert cpu_kernels.cpu_kernel("attention") == "matmul"
    assert cpu_kernels.cpu_kernel("dropout") == "threshold"
    kernels("attention=flash")
    with pytest.raises(ConfigError, match="bad entry 'attention=flash'"):
        cpu_kernels.choices()


@pytest.mark.parametrize("amx", [True, False], ids=["amx", "no-amx"])
def test_bf16_decoding_takes_sdpa_on_an_amx_cpu_only(kernels, monkeypatch, amx):
    monkeypatch.setattr(cpu_kernels, "has_amx_bf16", lambda: amx)
    kernels("")
    bf16 = "sdpa" if amx else "matmul"
    assert cpu_kernels.cpu_kernel("decode_attention", torch.bfloat16) == bf16
    assert cpu_kernels.cpu_kernel("decode_attention", torch.float32) == "matmul"
    assert cpu_kernels.cpu_kernel("attention", torch.bfloat16) == "matmul"  # training: matmul
    kernels("decode_attention=matmul")  # the override holds in every dtype
    assert cpu_kernels.cpu_kernel("decode_attention", torch.bfloat16) == "matmul"
    kernels("decode_attention=sdpa")
    assert cpu_kernels.cpu_kernel("decode_attention", torch.float32) == "sdpa"


def _attend(choice: str, kernels, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    kernels(f"attention={choice},decode_attention={choice}")
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 3, 5, 7)
    x = torch.randn(2, 4, 24, requires_grad=True)
    mem = torch.randn(2, 6, 24)
    keep = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    if causal:
        out = mha(x, x, is_causal=True)
    else:
        out = mha(x, mem, mask=keep[:, None, None, :])
    out.square().sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("causal", [False, True], ids=["padding-mask", "causal"])
def test_both_attention_kernels_compute_the_same_values_and_gradients(kernels, causal):
    out_m, grad_m = _attend("matmul", kernels, causal)
    out_s, grad_s = _attend("sdpa", kernels, causal)
    torch.testing.assert_close(out_m, out_s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_m, grad_s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("choice", ["threshold", "bernoulli"])
def test_both_dropout_kernels_keep_1_minus_p_and_rescale(kernels, choice):
    kernels(f"dropout={choice}")
    torch.manual_seed(0)
    y = Dropout(0.3).train()(torch.ones(200_000))
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.01)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
