"""Label smoothing, the LR schedule and checkpoint averaging against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from lit_transformer.training.average import average_checkpoints, save_atomic
from lit_transformer.training.loss import label_smoothed_loss, token_nll
from lit_transformer.training.schedule import noam_lr, noam_scheduler


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


def test_lr_schedule_against_hand_computed_values():
    # lrate = d^-0.5 · min(step^-0.5, step · warmup^-1.5), d = 512, warmup = 4000.
    assert noam_lr(1, 512, 4000) == pytest.approx(512**-0.5 * 4000**-1.5)
    assert noam_lr(4000, 512, 4000) == pytest.approx(512**-0.5 * 4000**-0.5)  # the peak
    assert noam_lr(4000, 512, 4000) == pytest.approx(6.987712429686844e-4)
    assert noam_lr(16000, 512, 4000) == pytest.approx(noam_lr(4000, 512, 4000) / 2)
    assert noam_lr(100, 512, 4000, scale=2.0) == pytest.approx(2 * 512**-0.5 * 100 * 4000**-1.5)


def test_scheduler_steps_per_optimizer_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=123.0)
    sched = noam_scheduler(opt, d_model=256, warmup_steps=10)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([noam_lr(s, 256, 10) for s in range(1, 13)])


def test_checkpoint_averaging(tmp_path):
    paths = []
    for i, value in enumerate([1.0, 2.0, 6.0]):
        ckpt = {
            "global_step": 10 * (i + 1),
            "state_dict": {"w": torch.full((2, 2), value), "n": torch.tensor(i)},
            "optimizer_states": [{}],
        }
        path = tmp_path / f"c{i}.ckpt"
        save_atomic(ckpt, path)
        paths.append(path)
    avg = average_checkpoints(paths)
    torch.testing.assert_close(avg["state_dict"]["w"], torch.full((2, 2), 3.0))
    assert avg["state_dict"]["n"].item() == 0  # integer buffers are taken from the first
    assert "optimizer_states" not in avg
    assert avg["averaged_from"] == [str(p) for p in paths]
