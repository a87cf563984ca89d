"""Label-smoothed cross-entropy (§5.4, ε_ls = 0.1) and per-wordpiece perplexity: the one
label-smoothing convention of the project (rule *one smoothing convention*, ARCHITECTURE.md).

Convention (torch's ``F.cross_entropy(label_smoothing=ε)``): the target distribution is
q = (1 − ε)·onehot(y) + ε/V over all V vocabulary entries (the gold token receives
1 − ε + ε/V), so for log-probabilities ℓ = log_softmax(z)

    loss = (1 − ε)·(−ℓ_y) + ε·mean_v(−ℓ_v),

and its gradient with respect to the logits is

    ∂loss/∂z = softmax(z) − q.

Positions whose target is padding contribute nothing. The loss is averaged over real target
tokens. Perplexity is exp of the *unsmoothed* NLL per target wordpiece (EOS included), as the
paper reports it.

Training uses ``LabelSmoothedCrossEntropy``, which computes exactly that loss and writes the
gradient above in one pass over the [tokens, V] logits. ``F.cross_entropy`` builds it from
log-softmax backward plus separate NLL and smoothing gradients (a zero fill, a scatter and a
sum over the whole logits matrix): several passes where one does (BENCHMARKS.md, "CPU kernel
choices", and "Session 3: a fused label-smoothed loss"). The tests check both against
hand-computed values and against ``F.cross_entropy``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class LabelSmoothedCrossEntropy(torch.autograd.Function):
    """Mean label-smoothed CE over non-pad rows of ``logits`` [N, V] (any float dtype; the
    softmax runs in fp32 and the gradient comes back in the logits' dtype)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, epsilon: float, pad_id: int) -> Tensor:
        lprobs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
        real = target != pad_id
        n_real = real.sum().clamp_(min=1)
        gold = target.masked_fill(~real, 0)
        nll = -lprobs.gather(1, gold[:, None]).squeeze(1)
        smooth = -lprobs.mean(dim=-1)
        loss = (((1.0 - epsilon) * nll + epsilon * smooth) * real).sum() / n_real
        ctx.save_for_backward(lprobs, gold, real, n_real)
        ctx.epsilon, ctx.logits_dtype = epsilon, logits.dtype
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor, None, None, None]:
        lprobs, gold, real, n_real = ctx.saved_tensors
        eps, vocab = ctx.epsilon, lprobs.size(-1)
        # softmax(z) − ε/V everywhere, − (1 − ε) more at the gold token, scaled per row; in
        # place on the saved log-probabilities (a second backward then fails loudly).
        grad = lprobs.exp_().sub_(eps / vocab)
        grad.scatter_add_(1, gold[:, None], grad.new_full((gold.numel(), 1), eps - 1.0))
        grad.mul_((real.to(grad.dtype) * (grad_loss / n_real))[:, None])
        return grad.to(ctx.logits_dtype), None, None, None


def label_smoothed_loss(logits: Tensor, target: Tensor, epsilon: float, pad_id: int) -> Tensor:
    """Mean label-smoothed cross-entropy over non-pad targets. logits [..., V], target [...]."""
    return LabelSmoothedCrossEntropy.apply(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), epsilon, pad_id
    )


def token_nll(logits: Tensor, target: Tensor, pad_id: int) -> Tensor:
    """Unsmoothed NLL per target position, [B, T], zero at padding."""
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        target.reshape(-1),
        ignore_index=pad_id,
        reduction="none",
    )
    return nll.view_as(target)
