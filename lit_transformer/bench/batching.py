"""``bench batching``: how much of a token-budget batch is real tokens, not padding."""

from __future__ import annotations

from typing import Any


def bench_batching(
    corpus: str = "multi30k",
    vocab_size: int = 8000,
    max_tokens: int = 2048,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Real-token fraction of an epoch of training batches under the token budget."""
    from lit_transformer.data.datamodule import TranslationDataModule
    from lit_transformer.data.sampler import TokenBudgetBatchSampler

    dm = TranslationDataModule(
        corpus=corpus, data_root=data_root, vocab_size=vocab_size, max_tokens=max_tokens
    )
    dm.setup("fit")
    ds = dm.dataset("train")
    sampler = TokenBudgetBatchSampler(ds.src_lens, ds.tgt_lens, max_tokens, seed=0)
    batches = sampler.epoch_batches()
    real = padded = 0
    for batch in batches:
        s = [int(ds.src_lens[i]) for i in batch]
        t = [int(ds.tgt_lens[i]) for i in batch]
        real += sum(s) + sum(t)
        padded += len(batch) * (max(s) + max(t))
    return {
        "corpus": corpus,
        "vocab_size": vocab_size,
        "max_tokens": max_tokens,
        "pairs": len(ds),
        "batches": len(batches),
        "real_token_fraction": real / padded,
        "mean_pairs_per_batch": len(ds) / len(batches),
    }
