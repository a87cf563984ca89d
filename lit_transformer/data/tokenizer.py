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
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece as spm

from lit_transformer.data.corpora import DataError
from lit_transformer.provenance import publish

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

    def encode(self, texts: Sequence[str], num_threads: int | None = None) -> list[list[int]]:
        """Sentences -> subword ids, without bos/eos (the collate adds them); a list is
        encoded by ``num_threads`` threads of SentencePiece's own pool (None: its default)."""
        if num_threads is None:
            return self._sp.encode(list(texts), out_type=int)
        return self._sp.encode(list(texts), out_type=int, num_threads=num_threads)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Ids -> detokenised sentences. pad/bos/eos and out-of-range ids are dropped (unk is kept
        and renders as " ⁇ "); the caller truncates at the first eos if it wants to."""
        n, special = self.vocab_size, (PAD_ID, BOS_ID, EOS_ID)
        clean = [[int(i) for i in seq if 0 <= int(i) < n and int(i) not in special] for seq in ids]
        return self._sp.decode(clean)

    def __repr__(self) -> str:
        return f"Tokenizer({str(self._model_path)!r}, vocab_size={self.vocab_size})"


def spm_options(
    vocab_size: int,
    *,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
    seed: int = 0,
    max_input_sentences: int = 2_000_000,
    max_sentence_length: int = 4192,
    **extra_options: object,
) -> dict:
    """Every training option of a tokenizer; part of its cache key. ``extra_options`` are
    passed to ``SentencePieceTrainer.train``."""
    return {
        "vocab_size": int(vocab_size),
        "model_type": model_type,
        "character_coverage": float(character_coverage),
        "seed": int(seed),
        "max_input_sentences": int(max_input_sentences),
        "max_sentence_length": int(max_sentence_length),
        **{k: extra_options[k] for k in sorted(extra_options)},
    }


_OWN = ("vocab_size", "model_type", "character_coverage", "seed", "max_input_sentences")


def sample_rows(n_lines: int, max_input_sentences: int, seed: int) -> np.ndarray | None:
    """Which of ``n_lines`` training lines (all sources, then all targets) the tokenizer
    trains on: all (None) up to ``max_input_sentences``, else a seeded uniform sample, in
    order. SentencePiece's own ``input_sentence_size`` would take the *first* N lines, i.e.
    only the first corpus of a composite."""
    if n_lines <= max_input_sentences:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_lines, size=max_input_sentences, replace=False))


def _drop_paths(model: Path) -> None:
    """SentencePiece records the (temporary) input and output paths in the model's trainer
    spec, so two trainings of one vocabulary would differ in bytes and in the tokenizer hash
    a trial records (rule *recorded provenance*); fixed names make the bytes reproducible."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto.FromString(model.read_bytes())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.input.append("input.txt")
    proto.trainer_spec.model_prefix = "spm"
    model.write_bytes(proto.SerializeToString())


def load_or_train(
    key: str, options: dict, write_input: Callable[[Path], int], cache_dir: Path
) -> Tokenizer:
    """The tokenizer cached under ``spm/<key>``, or train it on the lines ``write_input(path)``
    writes (it returns how many) and cache it.

    Training is deterministic: single-threaded, and SentencePiece neither samples nor shuffles
    (the caller's ``write_input`` has already sampled, see :func:`sample_rows`)."""
    final_dir = Path(cache_dir) / "spm" / key
    if (final_dir / "spm.model").is_file():
        return Tokenizer(final_dir / "spm.model")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final_dir.parent))
    vocab_size = options["vocab_size"]
    extra = {k: v for k, v in options.items() if k not in _OWN}
    try:
        input_file = tmp_dir / "input.txt"
        n_lines = write_input(input_file)
        spm.set_random_generator_seed(options["seed"])
        try:
            spm.SentencePieceTrainer.train(
                input=str(input_file),
                model_prefix=str(tmp_dir / "spm"),
                model_type=options["model_type"],
                vocab_size=vocab_size,
                character_coverage=options["character_coverage"],
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                num_threads=1,  # multi-threaded training is not bit-reproducible
                input_sentence_size=0,  # already sampled by write_input
                shuffle_input_sentence=False,
                minloglevel=2,  # quiet: errors only
                **extra,
            )
        except RuntimeError as err:
            msg = str(err).splitlines()[0]
            if "Vocabulary size too high" in msg or "vocab_size" in msg.lower():
                detail = msg.split("] ", 1)[-1]
                raise DataError(
                    f"vocab_size={vocab_size} is too large for {n_lines} training sentences: "
                    f"{detail}"
                ) from None
            raise DataError(f"sentencepiece training failed: {msg}") from None
        input_file.unlink()
        _drop_paths(tmp_dir / "spm.model")
        (tmp_dir / "options.json").write_text(json.dumps(options, indent=1, default=str))
        publish(tmp_dir, final_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return Tokenizer(final_dir / "spm.model")


def train_or_load(
    src_texts: Sequence[str],
    tgt_texts: Sequence[str],
    vocab_size: int,
    cache_dir: Path,
    **options: object,
) -> Tokenizer:
    """Train ONE joint model on source+target training text held in memory, or load it from
    the cache (key: the texts and every option, see :func:`spm_options`)."""
    opts = spm_options(vocab_size, **options)  # type: ignore[arg-type]
    key_src = json.dumps(opts, sort_keys=True, default=str)
    key = hashlib.sha256(
        f"{hash_texts(src_texts)}:{hash_texts(tgt_texts)}:{key_src}".encode()
    ).hexdigest()[:32]

    def write_input(path: Path) -> int:
        lines = [*src_texts, *tgt_texts]
        keep = sample_rows(len(lines), opts["max_input_sentences"], opts["seed"])
        if keep is not None:
            lines = [lines[i] for i in keep]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return len(lines)

    return load_or_train(key, opts, write_input, cache_dir)


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
    def load(cls, directory: Path, side: str) -> EncodedTexts:
        """Memory-map ``SIDE.ids`` and ``SIDE.offsets.npy`` (see :class:`EncodedWriter`): every
        process on a node (DDP ranks, sweep trials) shares the page cache's one copy."""
        offsets = np.load(Path(directory) / f"{side}.offsets.npy", mmap_mode="r")
        ids = Path(directory) / f"{side}.ids"
        if ids.stat().st_size == 0:  # np.memmap refuses an empty file
            return cls(np.zeros(0, dtype=np.int32), offsets)
        return cls(np.memmap(ids, dtype=np.int32, mode="r"), offsets)

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]]) -> EncodedTexts:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)


def as_arrays(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id sequences -> (flat int32 ids, int64 lengths)."""
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths


class EncodedWriter:
    """Appends encoded chunks of one side to ``DIR/SIDE.ids`` (raw int32, the flat ids) and,
    on :meth:`close`, writes ``DIR/SIDE.offsets.npy``; never holds more than a chunk's ids."""

    def __init__(self, directory: Path, side: str) -> None:
        self.directory, self.side = Path(directory), side
        self._file = open(self.directory / f"{side}.ids", "wb")  # noqa: SIM115 (closed below)
        self._lengths: list[np.ndarray] = []

    def add(self, seqs: Sequence[Sequence[int]]) -> None:
        self.add_arrays(*as_arrays(seqs))

    def add_arrays(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(flat, dtype=np.int32).tobytes())
        self._lengths.append(lengths)

    def close(self) -> None:
        self._file.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np.save(self.directory / f"{self.side}.offsets.npy", offsets)


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
