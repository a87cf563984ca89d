"""``bench choices``: each CPU-specific kernel choice against its alternative, on this CPU."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from lit_transformer.training.loss import label_smoothed_loss


def _best_ms(fn: Any, reps: int) -> float:
    """Median wall time of ``fn`` in ms after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def bench_choices(precision: str = "auto", reps: int = 20) -> dict[str, Any]:
    """Each CPU-specific kernel choice of the package against the library's alternative, at
    the shapes of the CPU-scale base (d_model 256, h 4, batches of ~2,048 tokens), on this
    machine: ``ours_ms`` / ``alternative_ms`` and their ratio (> 1: ours is faster), and under
    ``kernels`` which of the two the package runs here (``model/cpu_kernels.py``).

    - attention: matmul–softmax–matmul (``model/attention.py``) vs SDPA
      (training fwd+bwd with a padding mask, causal fwd+bwd, one decoding query against 20 keys);
    - dropout: thresholding ``rand_like`` (``model/dropout.py``) vs ``F.dropout`` (``bernoulli_``);
    - loss: the fused label-smoothed CE (``training/loss.py``) vs ``F.cross_entropy``, fwd+bwd.
    """
    from lit_transformer.model.attention import _cpu_attention
    from lit_transformer.model.cpu_kernels import choices
    from lit_transformer.model.dropout import threshold_dropout
    from lit_transformer.precision import cpu_description, resolve

    resolved, why = resolve(precision, "cpu")
    bf16 = resolved == "bf16-mixed"
    torch.manual_seed(0)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def attention_case(b: int, t_q: int, t_k: int, causal: bool, backward: bool) -> tuple:
        q = torch.randn(b, 4, t_q, 64, requires_grad=backward)
        k = torch.randn(b, 4, t_k, 64, requires_grad=backward)
        v = torch.randn(b, 4, t_k, 64, requires_grad=backward)
        mask = None if causal else (torch.rand(b, 1, 1, t_k) > 0.1)

        def run(fn: Any) -> Any:
            def step() -> None:
                with autocast():
                    out = fn(q, k, v, mask, causal)
                if backward:
                    out.float().sum().backward()

            return step

        ours = run(lambda q, k, v, m, c: _cpu_attention(q, k, v, m, 0.0, c))
        sdpa = run(
            lambda q, k, v, m, c: F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=c)
        )
        return ours, sdpa

    cases: dict[str, tuple] = {
        "attention, training, padding mask (64x4x20x64)": attention_case(64, 20, 20, False, True),
        "attention, training, causal (64x4x20x64)": attention_case(64, 20, 20, True, True),
        "attention, decoding query vs 20 keys (440 rows)": attention_case(440, 1, 20, False, False),
    }
    x = torch.randn(128, 16, 1024)
    cases["dropout 0.1 (128x16x1024)"] = (
        lambda: threshold_dropout(x, 0.1),
        lambda: F.dropout(x, 0.1, True),
    )
    logits = torch.randn(1280, 8000, requires_grad=True)
    target = torch.randint(4, 8000, (1280,))
    lg = logits.bfloat16().detach().requires_grad_() if bf16 else logits

    def fused() -> None:
        label_smoothed_loss(lg, target, 0.1, 0).backward()

    def plain() -> None:
        F.cross_entropy(lg.float(), target, ignore_index=0, label_smoothing=0.1).backward()

    cases["label-smoothed CE fwd+bwd (1280x8000)"] = (fused, plain)
    out: dict[str, Any] = {
        "cpu": cpu_description(),
        "kernels": dict(choices()),  # what the package runs here (rules and override applied)
        "threads": torch.get_num_threads(),
        "precision": resolved,
        "precision_reason": why,
        "choices": {},
    }
    for name, (ours_fn, alt_fn) in cases.items():
        # Alternate the two, so the VM's drift hits both alike.
        ours_ms, alt_ms = [], []
        for _ in range(3):
            ours_ms.append(_best_ms(ours_fn, reps))
            alt_ms.append(_best_ms(alt_fn, reps))
        o, a = statistics.median(ours_ms), statistics.median(alt_ms)
        out["choices"][name] = {"ours_ms": o, "alternative_ms": a, "speedup": a / o}
    return out
