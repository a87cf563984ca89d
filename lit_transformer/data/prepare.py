"""The training split from files to memory-mapped token ids, at the paper's scale (4.5M pairs)
on one small machine.

Up to three streaming passes over the training files, each holding at most a chunk of pairs:

1. *scan*: apply the cleaning rules (:mod:`clean`) and count what each removes;
2. *sample*: collect the lines the tokenizer trains on (all, or a seeded sample of
   ``max_input_sentences``; :func:`tokenizer.sample_rows`) and train it;
3. *encode*: encode the kept pairs in chunks, by one process per core, appending the
   ids to flat files (:class:`tokenizer.EncodedWriter`).

Every result is cached (``scan/``, ``spm/``, ``enc/`` under the cache directory), keyed by the
files' contents and every option, so a restart only hashes the files and memory-maps the ids:
every DDP rank and sweep trial on a node shares one copy in the page cache.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_transformer.data.clean import CleanCounts, CleanRules
from lit_transformer.data.corpora import DataError, Part, file_sha256, iter_pairs
from lit_transformer.data.tokenizer import (
    EncodedTexts,
    EncodedWriter,
    Tokenizer,
    as_arrays,
    load_or_train,
    sample_rows,
    spm_options,
)
from lit_transformer.provenance import publish, write_json_atomic

CHUNK = 50_000  # pairs per encoding call: big enough for SentencePiece's threads, small in RAM


@dataclass
class TrainSplit:
    tokenizer: Tokenizer
    src: EncodedTexts
    tgt: EncodedTexts
    counts: CleanCounts


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime) for the process's lifetime."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _SHA_MEMO:
        _SHA_MEMO[memo] = file_sha256(path)
    return _SHA_MEMO[memo]


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def threads() -> int:
    """Encoding processes: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _Stream:
    """The kept pairs of a split's parts, with the cleaning verdict of every pair read."""

    def __init__(self, parts: list[Part], rules: CleanRules) -> None:
        self.parts, self.rules = parts, rules

    def pairs(self, counts: CleanCounts | None = None) -> Iterator[tuple[str, str]]:
        for part in self.parts:
            for src, tgt in iter_pairs(part, allow_empty=self.rules.drop_empty):
                reason = self.rules.reason(src, tgt)
                if counts is not None:
                    counts.read += 1
                    if reason:
                        counts.removed[reason] += 1
                if reason is None:
                    yield src, tgt

    def chunks(self, counts: CleanCounts | None = None) -> Iterator[tuple[list[str], list[str]]]:
        src: list[str] = []
        tgt: list[str] = []
        for s, t in self.pairs(counts):
            src.append(s)
            tgt.append(t)
            if len(src) == CHUNK:
                yield src, tgt
                src, tgt = [], []
        if src:
            yield src, tgt


def _scan(stream: _Stream, path: Path) -> CleanCounts:
    if path.is_file():
        return CleanCounts.from_dict(json.loads(path.read_text()))
    counts = CleanCounts()
    for _ in stream.pairs(counts):
        pass
    write_json_atomic(counts.to_dict(), path)
    return counts


def _sampled_input(stream: _Stream, kept: int, opts: dict):  # noqa: ANN202 (a closure)
    """``write_input`` for :func:`tokenizer.load_or_train`: the kept sources, then the kept
    targets, or the sample of them :func:`sample_rows` picks; identical to what
    :func:`tokenizer.train_or_load` writes for the same pairs held in memory."""

    def write_input(path: Path) -> int:
        rows = sample_rows(2 * kept, opts["max_input_sentences"], opts["seed"])
        take = np.zeros(2 * kept, dtype=bool)
        take[slice(None) if rows is None else rows] = True
        src_lines: list[str] = []
        tgt_lines: list[str] = []
        for i, (s, t) in enumerate(stream.pairs()):
            if take[i]:
                src_lines.append(s)
            if take[kept + i]:
                tgt_lines.append(t)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join([*src_lines, *tgt_lines]) + "\n")
        return len(src_lines) + len(tgt_lines)

    return write_input


_WORKER_TOKENIZER: Tokenizer | None = None


def _init_worker(tok: Tokenizer) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tok


def _encode_pair(tok: Tokenizer, src: list[str], tgt: list[str]) -> tuple[np.ndarray, ...]:
    return (*as_arrays(tok.encode(src)), *as_arrays(tok.encode(tgt)))


def _encode_in_worker(src: list[str], tgt: list[str]) -> tuple[np.ndarray, ...]:
    assert _WORKER_TOKENIZER is not None
    return _encode_pair(_WORKER_TOKENIZER, src, tgt)


def _encoded_chunks(
    stream: _Stream, tok: Tokenizer, counts: CleanCounts, n_procs: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """(src ids, src lengths, tgt ids, tgt lengths) per chunk, in order. SentencePiece's own
    ``num_threads`` does not speed up its Python ``encode`` (measured, BENCHMARKS.md), so
    several processes encode; at most two chunks per process are in flight, which bounds
    memory whatever the corpus's size."""
    chunks = stream.chunks(counts)
    if n_procs <= 1:
        for src, tgt in chunks:
            yield _encode_pair(tok, src, tgt)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ctx.Pool(n_procs, initializer=_init_worker, initargs=(tok,)) as pool:
        pending: deque = deque()
        for src, tgt in chunks:
            pending.append(pool.apply_async(_encode_in_worker, (src, tgt)))
            if len(pending) >= 2 * n_procs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _encode(stream: _Stream, tok: Tokenizer, final: Path, n_procs: int) -> CleanCounts:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        counts = CleanCounts()
        src, tgt = EncodedWriter(tmp, "src"), EncodedWriter(tmp, "tgt")
        for src_ids, src_lens, tgt_ids, tgt_lens in _encoded_chunks(stream, tok, counts, n_procs):
            src.add_arrays(src_ids, src_lens)
            tgt.add_arrays(tgt_ids, tgt_lens)
        src.close()
        tgt.close()
        (tmp / "clean.json").write_text(json.dumps(counts.to_dict(), indent=1))
        publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return counts


def prepare_train(
    parts: list[Part],
    cache_dir: Path,
    vocab_size: int,
    rules: CleanRules | None = None,
    tokenizer: Tokenizer | None = None,
    n_threads: int | None = None,
    timings: dict[str, float] | None = None,
    **spm_kwargs: object,
) -> TrainSplit:
    """Clean, tokenize (training the joint tokenizer unless one is given) and encode the
    training parts, from the caches where they hold the result.

    Keys: the training data is (every file's name and sha256, the cleaning rules); the
    tokenizer is (that, every SentencePiece option); the ids are (the tokenizer's sha256,
    the training data). The tokenizer is the one :func:`tokenizer.train_or_load` trains on
    the same pairs held in memory, byte for byte."""
    rules = rules or CleanRules()
    cache_dir = Path(cache_dir)
    timings = {} if timings is None else timings
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    stream = _Stream(parts, rules)
    files = [(p.name, _file_sha256(p)) for part in parts for p in part.files]
    data_key = _digest("train", files, rules.key())
    lap("hash_s")
    counts: CleanCounts | None = None
    if tokenizer is None:
        opts = spm_options(vocab_size, **spm_kwargs)  # type: ignore[arg-type]
        tok_key = _digest("spm", data_key, opts)
        if not (cache_dir / "spm" / tok_key / "spm.model").is_file():
            counts = _scan(stream, cache_dir / "scan" / f"{data_key}.json")
            if counts.kept == 0:
                raise DataError("the cleaning rules drop every training pair")
            lap("scan_s")
        kept = counts.kept if counts else 0
        tokenizer = load_or_train(tok_key, opts, _sampled_input(stream, kept, opts), cache_dir)
        lap("tokenizer_s")
    enc_dir = cache_dir / "enc" / _digest("ids", tokenizer.sha256, data_key)
    if (enc_dir / "clean.json").is_file():
        counts = CleanCounts.from_dict(json.loads((enc_dir / "clean.json").read_text()))
    else:
        counts = _encode(stream, tokenizer, enc_dir, n_threads or threads())
    lap("encode_s")
    if counts.kept == 0:
        raise DataError("the cleaning rules drop every training pair")
    return TrainSplit(
        tokenizer, EncodedTexts.load(enc_dir, "src"), EncodedTexts.load(enc_dir, "tgt"), counts
    )
