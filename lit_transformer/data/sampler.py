"""Token-budget batching, as in the paper: "sentence pairs were batched together by approximate
sequence length", each batch holding about 25k source and 25k target tokens.

Budgets count *padded* size, ``len(batch) * max_len_in_batch <= max_tokens`` per side, because
that is what the GPU actually computes on. Every rank draws the same batch order from the
seed and takes its shard of it (rule *same steps, same batches*, ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def padding_fraction(src_lens: Sequence[int], tgt_lens: Sequence[int]) -> float:
    """Fraction of padded positions in one batch, over source and target together."""
    src, tgt = np.asarray(src_lens), np.asarray(tgt_lens)
    padded = len(src) * (src.max() + tgt.max())
    return float(1.0 - (src.sum() + tgt.sum()) / padded) if padded else 0.0


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches under a padded token budget, shuffled per epoch, sharded by rank.

    Each epoch (``rng = default_rng(seed + epoch)``):

    1. sort pairs by (tgt_len, src_len), the source order reversed in every other target length
       (a "snake", so batches that straddle two target lengths stay short or long on the
       source side), breaking ties between equal lengths at random, so batch
       *membership* varies across epochs while the cut points (which depend only on the sorted
       lengths) and hence ``len(self)`` stay fixed;
    2. cut greedily into batches with ``B * max_src <= max_tokens`` and ``B * max_tgt <=
       max_tokens`` (a single over-long pair forms a batch of one) and ``B <= max_sentences``;
    3. shuffle the order of batches (if ``shuffle``).

    Sharding: the batch list is identical on every rank; it is padded by repeating batches from
    its start until divisible by ``num_replicas``, and rank r takes batches r, r+R, r+2R, ... So
    every rank runs the same number of steps (no DDP hang), and with one replica each pair
    appears exactly once per epoch; with several, padding batches are duplicates (evaluation
    dedups by the ``index`` key of the batch).

    Epochs advance through :meth:`set_epoch`, like ``DistributedSampler``. Lightning calls it
    automatically at the start of every train epoch (also after resuming from a checkpoint):
    its ``_set_sampler_epoch`` looks for ``dataloader.batch_sampler.sampler.set_epoch``, which
    is why ``self.sampler`` is this object itself. Without shuffling the epoch is irrelevant.
    """

    def __init__(
        self,
        src_lens: Sequence[int],
        tgt_lens: Sequence[int],
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        max_sentences: int | None = None,
    ) -> None:
        if len(src_lens) != len(tgt_lens):
            raise ValueError(f"{len(src_lens)} source lengths but {len(tgt_lens)} target lengths")
        if max_tokens < 1 or num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"bad max_tokens={max_tokens}/num_replicas={num_replicas}/rank={rank}")
        # int32 and index arrays of int32: at 4.5M pairs every array is 18 MB per rank.
        self.src_lens = np.asarray(src_lens, dtype=np.int32)
        self.tgt_lens = np.asarray(tgt_lens, dtype=np.int32)
        self.max_tokens = int(max_tokens)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.max_sentences = max_sentences
        self.epoch = 0
        # Lengths sorted by (tgt, src) with the source order reversed in every other target
        # length ("snake"), so a batch that straddles two target lengths takes the long
        # sources of one and the long sources of the next rather than long and short ones.
        # The tie-break never changes this sequence, so the cut points computed once here are
        # valid for every epoch's permutation.
        rank = np.unique(self.tgt_lens, return_inverse=True)[1].reshape(-1)
        self._src_key = np.where(rank % 2 == 1, -self.src_lens, self.src_lens)
        del rank
        self._base_order = np.lexsort((self._src_key, self.tgt_lens)).astype(np.int32)
        self._bounds = self._cut(self.src_lens[self._base_order], self.tgt_lens[self._base_order])

    # Lightning's _set_sampler_epoch calls dataloader.batch_sampler.sampler.set_epoch(epoch).
    @property
    def sampler(self) -> TokenBudgetBatchSampler:
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle to produce (deterministic from seed + epoch)."""
        self.epoch = int(epoch)

    def _cut(self, src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
        """Greedy batch boundaries [0, b1, ..., n] over length-sorted pairs: each batch is the
        longest run from its start with ``B * max_src <= max_tokens``, ``B * max_tgt <=
        max_tokens`` and ``B <= max_sentences``, at least one pair. ``B * running max`` only
        grows with ``B``, so the run is the prefix where the condition holds, found for a
        window of candidates at once (no Python loop over 4.5M pairs)."""
        n, cap, budget = len(src), self.max_sentences or len(src) or 1, self.max_tokens
        bounds = [0]
        a = 0
        while a < n:
            # Targets are sorted, so B <= budget // tgt[a] (a window never misses the cut).
            w = min(n - a, cap, budget // max(1, int(tgt[a])) + 1)
            count = np.arange(1, w + 1)
            fits = (count * np.maximum.accumulate(src[a : a + w]) <= budget) & (
                count * np.maximum.accumulate(tgt[a : a + w]) <= budget
            )
            size = w if fits.all() else int(np.argmin(fits))
            a += max(1, size)
            bounds.append(a)
        return np.asarray(bounds, dtype=np.int64)

    @property
    def num_batches(self) -> int:
        """Batches in the whole epoch, before padding for ranks."""
        return len(self._bounds) - 1

    def __len__(self) -> int:
        return -(-self.num_batches // self.num_replicas)

    def _epoch_arrays(self) -> list[np.ndarray]:
        """This epoch's full batch list as views into one index array (all ranks, padded to a
        multiple of num_replicas): lists of Python ints would cost ~36 bytes per pair."""
        if self.shuffle:
            rng = np.random.default_rng(self.seed + self.epoch)
            tie = rng.random(len(self.src_lens))
            order = np.lexsort((tie, self._src_key, self.tgt_lens)).astype(np.int32)
            del tie
        else:
            order = self._base_order
        batches = [order[a:b] for a, b in zip(self._bounds[:-1], self._bounds[1:], strict=True)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        pad = len(self) * self.num_replicas - len(batches)
        if batches:
            batches += [batches[i % len(batches)] for i in range(pad)]
        return batches

    def epoch_batches(self) -> list[list[int]]:
        """This epoch's full batch list (all ranks, padded to a multiple of num_replicas)."""
        return [b.tolist() for b in self._epoch_arrays()]

    def resume_at(self, batches: int) -> None:
        """Start the next iteration after this rank's first ``batches`` batches of the epoch,
        once: a run resumed mid-epoch continues the epoch's order where its checkpoint left it
        (rule *same steps, same batches*) instead of starting the epoch over. ``len`` stays the
        epoch's, as Lightning counts the resumed epoch's batches from where it left off."""
        self._resume_at = int(batches)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._resume_at = getattr(self, "_resume_at", 0), 0
        for batch in self._epoch_arrays()[self.rank :: self.num_replicas][skip:]:
            yield batch.tolist()

    @property
    def padding_fraction(self) -> float:
        """Expected fraction of padded positions (source + target) over an epoch, before rank
        padding; independent of the epoch because the cut points are fixed."""
        src, tgt = self.src_lens[self._base_order], self.tgt_lens[self._base_order]
        real = padded = 0
        for a, b in zip(self._bounds[:-1].tolist(), self._bounds[1:].tolist(), strict=True):
            padded += (b - a) * (int(src[a:b].max()) + int(tgt[a:b].max()))
        real = int(src.sum() + tgt.sum())
        return 1.0 - real / padded if padded else 0.0
