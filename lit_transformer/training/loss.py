"""Label-smoothed cross-entropy (§5.4, ε_ls = 0.1) and per-wordpiece perplexity.

Convention (torch's ``F.cross_entropy(label_smoothing=ε)``): the target distribution is
q = (1 − ε)·onehot(y) + ε/V over all V vocabulary entries (the gold token receives
1 − ε + ε/V), so for log-probabilities ℓ

    loss = (1 − ε)·(−ℓ_y) + ε·mean_v(−ℓ_v).

Positions whose target is padding contribute nothing. The loss is averaged over real target
tokens. Perplexity is exp of the *unsmoothed* NLL per target wordpiece (EOS included), as the
paper reports it.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def label_smoothed_loss(logits: Tensor, target: Tensor, epsilon: float, pad_id: int) -> Tensor:
    """Mean label-smoothed cross-entropy over non-pad targets. logits [..., V], target [...]."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        target.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=epsilon,
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
