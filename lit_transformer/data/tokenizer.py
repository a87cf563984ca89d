"""Joint source/target SentencePiece BPE (the paper's shared vocabulary), cached on disk.

Cache layout under ``cache_dir``::

    spm/<key>/spm.model   key = sha256(training texts + every training option)
    spm/<key>/spm.vocab
    spm/<key>/options.json
    enc/<key>.npz         key = sha256(tokenizer model bytes + texts); flat ids + offsets

Everything is written into a temp location and renamed into place, so concurrent processes
(sweep trials, DDP ranks) never read half-written files; if another process wins the race its
(identical) result is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

from lit_transformer.data.corpora import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def hash_texts(texts: Sequence[str]) -> str:
    """sha256 of a list of sentences (count-prefixed; sentences are newline-free)."""
    h = hashlib.sha256(f"{len(texts)}\n".encode())
    h.update("\n".join(texts).encode("utf-8"))
    return h.hexdigest()


class Tokenizer:
    """A SentencePiece model with fixed special ids: pad=0, unk=1, bos=2, eos=3.

    Pickles as the model bytes (not a live C++ object), so it can be sent to DataLoader workers
    and DDP processes even where the model file is not visible.
    """

    def __init__(self, model_path: str | Path) -> None:
        self._model_path = Path(model_path)
        self._load(self._model_path.read_bytes())

    def _load(self, proto: bytes) -> None:
        self._proto = proto
        self._sha256 = hashlib.sha256(proto).hexdigest()
        self._sp = spm.SentencePieceProcessor(model_proto=proto)
        got = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if got != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise DataError(f"{self._model_path}: special ids {got}, expected (0, 1, 2, 3)")

    def __getstate__(self) -> dict:
        return {"model_path": str(self._model_path), "proto": self._proto}

    def __setstate__(self, state: dict) -> None:
        self._model_path = Path(state["model_path"])
        self._load(state["proto"])

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def sha256(self) -> str:
        """sha256 of the .model file bytes: identifies the vocabulary for provenance."""
        return self._sha256

    @property
    def model_path(self) -> Path:
        return self._model_path

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Sentences -> subword ids, without bos/eos (the collate adds them)."""
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Ids -> detokenised sentences. pad/bos/eos and out-of-range ids are dropped (unk is kept
        and renders as " ⁇ "); the caller truncates at the first eos if it wants to."""
        n, special = self.vocab_size, (PAD_ID, BOS_ID, EOS_ID)
        clean = [[int(i) for i in seq if 0 <= int(i) < n and int(i) not in special] for seq in ids]
        return self._sp.decode(clean)

    def __repr__(self) -> str:
        return f"Tokenizer({str(self._model_path)!r}, vocab_size={self.vocab_size})"


def _atomic_publish_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Rename a finished temp dir into place; if another process got there first, keep theirs."""
    try:
        os.rename(tmp_dir, final_dir)
    except OSError:
        if not (final_dir / "spm.model").is_file():
            raise
        shutil.rmtree(tmp_dir, ignore_errors=True)


def train_or_load(
    src_texts: Sequence[str],
    tgt_texts: Sequence[str],
    vocab_size: int,
    cache_dir: Path,
    *,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
    seed: int = 0,
    max_input_sentences: int = 2_000_000,
    max_sentence_length: int = 4192,
    **extra_options: object,
) -> Tokenizer:
    """Train ONE joint model on source+target training text, or load it from the cache.

    Training is deterministic: single-threaded, no SentencePiece shuffling, and if the corpus
    exceeds ``max_input_sentences`` we subsample it ourselves with ``seed`` (SentencePiece would
    otherwise take the *first* N lines, i.e. only the first corpus of a composite).
    ``extra_options`` are passed to ``SentencePieceTrainer.train`` and are part of the cache key.
    """
    options = {
        "vocab_size": int(vocab_size),
        "model_type": model_type,
        "character_coverage": float(character_coverage),
        "seed": int(seed),
        "max_input_sentences": int(max_input_sentences),
        "max_sentence_length": int(max_sentence_length),
        **{k: extra_options[k] for k in sorted(extra_options)},
    }
    key_src = json.dumps(options, sort_keys=True, default=str)
    key = hashlib.sha256(
        f"{hash_texts(src_texts)}:{hash_texts(tgt_texts)}:{key_src}".encode()
    ).hexdigest()[:32]
    final_dir = Path(cache_dir) / "spm" / key
    if (final_dir / "spm.model").is_file():
        return Tokenizer(final_dir / "spm.model")

    lines = [*src_texts, *tgt_texts]
    if len(lines) > max_input_sentences:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(lines), size=max_input_sentences, replace=False))
        lines = [lines[i] for i in keep]
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final_dir.parent))
    try:
        input_file = tmp_dir / "input.txt"
        input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                input=str(input_file),
                model_prefix=str(tmp_dir / "spm"),
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                num_threads=1,  # multi-threaded training is not bit-reproducible
                input_sentence_size=0,  # already subsampled above
                shuffle_input_sentence=False,
                max_sentence_length=max_sentence_length,
                minloglevel=2,  # quiet: errors only
                **extra_options,
            )
        except RuntimeError as err:
            msg = str(err).splitlines()[0]
            if "Vocabulary size too high" in msg or "vocab_size" in msg.lower():
                detail = msg.split("] ", 1)[-1]
                raise DataError(
                    f"vocab_size={vocab_size} is too large for {len(lines)} training sentences: "
                    f"{detail}"
                ) from None
            raise DataError(f"sentencepiece training failed: {msg}") from None
        input_file.unlink()
        (tmp_dir / "options.json").write_text(json.dumps(options, indent=1, default=str))
        _atomic_publish_dir(tmp_dir, final_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return Tokenizer(final_dir / "spm.model")


class EncodedTexts:
    """Variable-length id sequences stored as one flat array plus offsets (fast to save/load).

    ``enc[i]`` is a read-only int32 view of sentence i; ``enc.lengths`` are the id counts.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat = flat
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_lists(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]]) -> EncodedTexts:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)


def encode_cached(tokenizer: Tokenizer, texts: Sequence[str], cache_dir: Path) -> EncodedTexts:
    """Encode sentences (no bos/eos), caching the result as ``enc/<key>.npz``."""
    key = hashlib.sha256(f"{tokenizer.sha256}:{hash_texts(texts)}".encode()).hexdigest()[:32]
    path = Path(cache_dir) / "enc" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return EncodedTexts(z["flat"], z["offsets"])
    enc = EncodedTexts.from_lists(tokenizer.encode(texts))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, flat=enc.flat, offsets=enc.offsets)
        os.replace(tmp, path)  # atomic; a concurrent writer produced identical bytes
    finally:
        Path(tmp).unlink(missing_ok=True)
    return enc
