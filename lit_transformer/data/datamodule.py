"""LightningDataModule: text -> joint BPE -> cached ids -> token-budget batches.

Batch dict (all LongTensors unless noted), B pairs, pad id 0:

* ``src``      [B, S]  source ids + [eos]
* ``tgt_in``   [B, T]  [bos] + target ids          (decoder input, teacher forcing)
* ``tgt_out``  [B, T]  target ids + [eos]          (labels; pad positions are 0)
* ``index``    [B]     row of each pair in its split (train rows index the unfiltered split),
                       so evaluation can look up ``dev_refs[index]`` and dedup the duplicate
                       batches added to give every rank the same number of batches
* ``n_src_tokens`` / ``n_tgt_tokens`` (int): real (non-pad) tokens in ``src`` / ``tgt_out``
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lit_transformer.data.clean import CleanCounts, CleanRules
from lit_transformer.data.corpora import (
    DataError,
    cache_root,
    get_corpus,
    has_test,
    hash_files,
    load_split,
    resolve_data_root,
    split_files,
    split_parts,
    with_files,
)
from lit_transformer.data.prepare import prepare_train
from lit_transformer.data.sampler import TokenBudgetBatchSampler
from lit_transformer.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    EncodedTexts,
    Tokenizer,
    encode_cached,
)


class PairDataset(Dataset):
    """Encoded pairs of one split; item i -> (row index, src ids, tgt ids) for rows[i]."""

    def __init__(self, src: EncodedTexts, tgt: EncodedTexts, rows: np.ndarray | None = None):
        self.src, self.tgt = src, tgt
        self.rows = rows  # None: every row (no index array of the split's size per rank)

    def __len__(self) -> int:
        return len(self.src) if self.rows is None else len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        row = int(i if self.rows is None else self.rows[i])
        return row, self.src[row], self.tgt[row]

    def _lens(self, enc: EncodedTexts) -> np.ndarray:
        lengths = enc.lengths if self.rows is None else enc.lengths[self.rows]
        return (lengths + 1).astype(np.int32)

    @property
    def src_lens(self) -> np.ndarray:
        """Lengths as collated: ids + eos."""
        return self._lens(self.src)

    @property
    def tgt_lens(self) -> np.ndarray:
        """Lengths as collated: bos + ids (= ids + eos)."""
        return self._lens(self.tgt)


def collate(items: list[tuple[int, np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor | int]:
    """Pad a list of (index, src ids, tgt ids) into the batch dict described in the module doc."""
    b = len(items)
    s_len = max(len(s) for _, s, _ in items) + 1
    t_len = max(len(t) for _, _, t in items) + 1
    src = np.full((b, s_len), PAD_ID, dtype=np.int64)
    tgt_in = np.full((b, t_len), PAD_ID, dtype=np.int64)
    tgt_out = np.full((b, t_len), PAD_ID, dtype=np.int64)
    n_src = n_tgt = 0
    for r, (_, s, t) in enumerate(items):
        src[r, : len(s)], src[r, len(s)] = s, EOS_ID
        tgt_in[r, 0], tgt_in[r, 1 : len(t) + 1] = BOS_ID, t
        tgt_out[r, : len(t)], tgt_out[r, len(t)] = t, EOS_ID
        n_src += len(s) + 1
        n_tgt += len(t) + 1
    return {
        "src": torch.from_numpy(src),
        "tgt_in": torch.from_numpy(tgt_in),
        "tgt_out": torch.from_numpy(tgt_out),
        "index": torch.tensor([i for i, _, _ in items], dtype=torch.long),
        "n_src_tokens": n_src,
        "n_tgt_tokens": n_tgt,
    }


class TranslationDataModule(L.LightningDataModule):
    """Loads a registered corpus, trains/loads the joint tokenizer on its training text, and
    serves token-budget batches sharded over ranks (create the Trainer with
    ``use_distributed_sampler=False``: the batch sampler does the sharding itself).

    ``dev_split``/``test_split`` take a role (dev/test) or a split name of the corpus.
    The train sampler's epoch is advanced by Lightning via ``set_epoch`` (see
    :class:`TokenBudgetBatchSampler`), so ``reload_dataloaders_every_n_epochs`` is not needed.
    """

    def __init__(
        self,
        corpus: str = "multi30k",
        data_root: str | None = None,
        src_lang: str = "en",
        tgt_lang: str = "de",
        vocab_size: int = 8000,
        max_tokens: int = 4096,
        seed: int = 0,
        cache_dir: str | None = None,
        num_workers: int = 0,
        max_len: int | None = None,
        dev_split: str = "dev",
        test_split: str = "test",
        max_sentences: int | None = None,
        max_eval_sentences: int | None = None,
        train: str | list[str] | None = None,
        dev: str | list[str] | None = None,
        test: str | list[str] | None = None,
        tests: str | dict[str, str] | None = None,
        clean_empty: bool = False,
        clean_max_words: int | None = None,
        clean_ratio: float | None = None,
        tokenizer_sentences: int = 2_000_000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the run's config holds the data section
        self.corpus = with_files(get_corpus(corpus), train, dev, test, tests)
        self.clean_rules = CleanRules(clean_empty, clean_max_words, clean_ratio)
        self.clean_counts: CleanCounts | None = None
        self.tokenizer: Tokenizer | None = None
        self.dev_srcs: list[str] = []
        self.dev_refs: list[str] = []
        self.test_srcs: list[str] = []
        self.test_refs: list[str] = []
        self.data_hash: str | None = None
        self._datasets: dict[str, PairDataset] = {}

    @property
    def cache_dir(self) -> Path:
        return Path(self.hparams.cache_dir).expanduser() if self.hparams.cache_dir else cache_root()

    def _has_test(self) -> bool:
        return has_test(self.corpus, self.hparams.test_split)

    def _load(self, stage: str | None = None) -> None:
        """Read text, build the tokenizer, encode (all cached); shared by prepare_data/setup.

        A tokenizer set beforehand (a checkpoint's, see ``evaluate``) is used as it is, and
        then the training text is only read when training."""
        hp = self.hparams
        root = resolve_data_root(hp.data_root)
        langs = (hp.src_lang, hp.tgt_lang)
        with_train = self.tokenizer is None or stage in (None, "fit")
        if with_train:
            # Not the run's seed: every trial of a sweep (all seeds) shares one tokenizer.
            train = prepare_train(
                split_parts(root, self.corpus, "train", *langs),
                self.cache_dir,
                hp.vocab_size,
                self.clean_rules,
                self.tokenizer,
                max_input_sentences=hp.tokenizer_sentences,
            )
            self.tokenizer, self.clean_counts = train.tokenizer, train.counts
        self.dev_srcs, self.dev_refs = load_split(root, self.corpus, hp.dev_split, *langs)
        if self._has_test():
            self.test_srcs, self.test_refs = load_split(root, self.corpus, hp.test_split, *langs)
        if hp.max_eval_sentences:  # smoke runs: evaluate on the first N pairs only
            n = hp.max_eval_sentences
            self.dev_srcs, self.dev_refs = self.dev_srcs[:n], self.dev_refs[:n]
            self.test_srcs, self.test_refs = self.test_srcs[:n], self.test_refs[:n]
        splits = {"dev": (self.dev_srcs, self.dev_refs)}
        if self._has_test():
            splits["test"] = (self.test_srcs, self.test_refs)
        encoded = {
            name: (
                encode_cached(self.tokenizer, src, self.cache_dir),
                encode_cached(self.tokenizer, tgt, self.cache_dir),
            )
            for name, (src, tgt) in splits.items()
        }
        if with_train:
            encoded["train"] = (train.src, train.tgt)
        for name, (enc_src, enc_tgt) in encoded.items():
            rows = None
            if name == "train" and hp.max_len is not None:
                # Lengths as the model sees them (+eos / +bos), so kept pairs fit max_len positions.
                keep = (enc_src.lengths + 1 <= hp.max_len) & (enc_tgt.lengths + 1 <= hp.max_len)
                rows = np.flatnonzero(keep)
                if len(rows) == 0:
                    raise DataError(f"max_len={hp.max_len} drops every training pair")
            self._datasets[name] = PairDataset(enc_src, enc_tgt, rows)
        # Without the training text (evaluation) the hash covers the eval files only.
        roles = ["train"] * with_train + [hp.dev_split] + [hp.test_split] * self._has_test()
        files = [f for r in roles for f in split_files(root, self.corpus, r, langs)]
        self.data_hash = hashlib.sha256(
            f"{hash_files(files)}:{self.tokenizer.sha256}".encode()
        ).hexdigest()

    def prepare_data(self) -> None:
        """Populate the tokenizer and encoding caches once per node (rank 0)."""
        if not self._datasets:
            self._load()

    def setup(self, stage: str | None = None) -> None:
        """Load everything from the caches; idempotent (a second call does nothing)."""
        if not self._datasets:
            self._load(stage)

    def dataset(self, split: str) -> PairDataset:
        """The encoded dataset of ``train``, ``dev`` or ``test``."""
        self.setup()
        if split not in self._datasets:
            if split == "train":
                raise DataError("the training split was not loaded: set up with stage 'fit'")
            raise DataError(f"corpus '{self.corpus.name}' has no {split} split")
        return self._datasets[split]

    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        world, rank = self._replicas()
        sampler = TokenBudgetBatchSampler(
            ds.src_lens,
            ds.tgt_lens,
            self.hparams.max_tokens,
            shuffle=shuffle,
            seed=self.hparams.seed,
            num_replicas=world,
            rank=rank,
            max_sentences=self.hparams.max_sentences,
        )
        trainer = getattr(self, "trainer", None)
        if shuffle and trainer is not None:
            sampler.set_epoch(trainer.current_epoch)
        workers = self.hparams.num_workers
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", shuffle=True)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.fit_loop.restarting:
            # Resumed from a checkpoint: the batches of its epoch already trained on (Lightning
            # restores its loop counters before it asks for the loader).
            done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            loader.batch_sampler.resume_at(done)
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
