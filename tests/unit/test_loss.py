"""Label smoothing (rule *one smoothing convention*) against hand-computed values and torch."""

from __future__ import annotations

import math

import pytest
import torch

from lit_transformer.training.loss import label_smoothed_loss, token_nll


def test_label_smoothing_against_hand_computed_values():
    # V = 4, one real position with gold 2 and one padded position (target 0 = pad).
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.0], [5.0, 1.0, 1.0, 1.0]]])
    target = torch.tensor([[2, 0]])
    eps = 0.1
    z = math.log(math.exp(1) + math.exp(2) + math.exp(3) + math.exp(0))
    logp = [1 - z, 2 - z, 3 - z, 0 - z]
    # q = (1 - eps)·onehot + eps / V over all V entries.
    expected = -(1 - eps) * logp[2] - eps * sum(logp) / 4
    assert label_smoothed_loss(logits, target, eps, pad_id=0).item() == pytest.approx(
        expected, rel=1e-6
    )
    assert label_smoothed_loss(logits, target, 0.0, pad_id=0).item() == pytest.approx(
        -logp[2], rel=1e-6
    )
    nll = token_nll(logits, target, pad_id=0)
    assert nll[0, 0].item() == pytest.approx(-logp[2], rel=1e-6)
    assert nll[0, 1].item() == 0.0  # padding contributes nothing


def test_label_smoothing_gradient_against_hand_computed_values():
    # ∂loss/∂z = (softmax(z) − q) / n_real, zero on padded rows.
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.0], [5.0, 1.0, 1.0, 1.0]]], requires_grad=True)
    target = torch.tensor([[2, 0]])
    eps = 0.1
    label_smoothed_loss(logits, target, eps, pad_id=0).backward()
    e = [math.exp(v) for v in (1.0, 2.0, 3.0, 0.0)]
    q = [eps / 4, eps / 4, 1 - eps + eps / 4, eps / 4]
    expected = [e[v] / sum(e) - q[v] for v in range(4)]
    assert logits.grad[0, 0].tolist() == pytest.approx(expected, abs=1e-7)
    assert logits.grad[0, 1].tolist() == [0.0] * 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_label_smoothing_matches_torch_cross_entropy(dtype):
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(6, 7, 50, generator=g)).to(dtype).requires_grad_()
    target = torch.randint(1, 50, (6, 7), generator=g)
    target[:, 5:] = 0  # padding
    ref_logits = logits.detach().clone().requires_grad_()
    ours = label_smoothed_loss(logits, target, 0.1, pad_id=0)
    ref = torch.nn.functional.cross_entropy(
        ref_logits.reshape(-1, 50).float(), target.reshape(-1), ignore_index=0, label_smoothing=0.1
    )
    (2 * ours).backward()
    (2 * ref).backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert logits.grad.dtype == dtype
    torch.testing.assert_close(logits.grad.float(), ref_logits.grad.float(), rtol=1e-5, atol=1e-6)


def test_label_smoothing_edge_cases():
    logits = torch.randn(2, 3, 10, requires_grad=True)
    assert label_smoothed_loss(logits, torch.zeros(2, 3, dtype=torch.long), 0.1, 0).item() == 0.0
    loss = label_smoothed_loss(logits, torch.ones(2, 3, dtype=torch.long), 0.1, 0)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()  # the gradient is written over the saved log-probabilities
