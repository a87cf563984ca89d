"""``bench data``: the paper-scale data path (4.5M pairs) on this machine.

The corpus is synthetic, built from the local training data, because WMT14 is not on these
machines: every synthetic pair joins ``k`` pairs drawn at random (uniformly, with
replacement) from the ``wmt-composite`` training split (Tatoeba, Multi30k, DDTP and the WMT
news sets other than newstest2013/2014; ~245k pairs), ``k`` uniform in 1..4, so sentences
average about WMT14's length and hardly repeat; one pair in 500 has its target emptied and one
in 2,000 its source repeated to over 250 words, for the cleaning rules to find.

Each stage runs in a fresh process, so its wall time and peak RSS are its own:

* ``prepare``: an empty cache to memory-mapped ids (hash, scan, tokenizer, encode);
* ``restart``: a fresh process with the cache full until the first batch is collated
  ("ready to train"), then one epoch's batches built;
* ``ranks``: two processes as two DDP ranks, each setting the data up from the cache and
  reading every pair of its shard; the memory each adds beyond its interpreter is its
  growth in *anonymous* memory (heap), since memory-mapped ids are page cache that every
  rank shares.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WMT_RULES = {"clean_empty": True, "clean_max_words": 250, "clean_ratio": 1.5}


def synthetic_corpus(data_root: Path, prefix: Path, pairs: int, seed: int = 0) -> Path:
    """Write ``PREFIX.{en,de}.gz`` (see the module doc) unless both exist; returns prefix."""
    from lit_transformer.data.corpora import load_split

    outs = [Path(f"{prefix}.{lang}.gz") for lang in ("en", "de")]
    if all(p.is_file() for p in outs):
        return prefix
    src, tgt = load_split(data_root, "wmt-composite", "train")
    rng = np.random.default_rng(seed)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmps = [Path(tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)[1]) for p in outs]
    try:
        files = [gzip.open(t, "wt", encoding="utf-8", compresslevel=1) for t in tmps]
        done = 0
        while done < pairs:
            n = min(100_000, pairs - done)
            k = rng.integers(1, 5, size=n)
            picks = rng.integers(0, len(src), size=int(k.sum()))
            ends = np.cumsum(k)
            en, de = [], []
            for j, (a, b) in enumerate(zip(ends - k, ends, strict=True)):
                i = done + j
                s = " ".join(src[p] for p in picks[a:b])
                t = " ".join(tgt[p] for p in picks[a:b])
                if i % 500 == 499:
                    t = ""
                elif i % 2000 == 1000:
                    s = " ".join([s] * (251 // max(1, len(s.split())) + 1))
                en.append(s)
                de.append(t)
            files[0].write("\n".join(en) + "\n")
            files[1].write("\n".join(de) + "\n")
            done += n
        for f in files:
            f.close()
        for tmp, out in zip(tmps, outs, strict=True):
            os.replace(tmp, out)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return prefix


def _memory() -> dict[str, int]:
    """This process's memory in bytes, from /proc/self/smaps_rollup (Linux)."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) * 1024
    return {
        "rss": out["Rss"],
        "pss": out["Pss"],
        "anonymous": out["Anonymous"],
        "uss": out["Private_Clean"] + out["Private_Dirty"],
    }


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _datamodule(opts: dict):  # noqa: ANN202
    from lit_transformer.data.datamodule import TranslationDataModule

    return TranslationDataModule(
        corpus="wmt",  # dev newstest2013, test newstest2014 from the data root
        data_root=opts["data_root"],
        vocab_size=opts["vocab_size"],
        max_tokens=opts["max_tokens"],
        cache_dir=opts["cache"],
        train=opts["prefix"],
        tokenizer_sentences=opts["tokenizer_sentences"],
        **WMT_RULES,
    )


def stage_prepare(opts: dict) -> dict[str, Any]:
    from lit_transformer.data.clean import CleanRules
    from lit_transformer.data.corpora import resolve_part
    from lit_transformer.data.prepare import prepare_train

    rules = CleanRules(True, WMT_RULES["clean_max_words"], WMT_RULES["clean_ratio"])
    part = resolve_part(Path("/"), opts["prefix"], "en", "de")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    train = prepare_train(
        [part],
        Path(opts["cache"]),
        opts["vocab_size"],
        rules,
        timings=timings,
        max_input_sentences=opts["tokenizer_sentences"],
    )
    return {
        "wall_s": time.perf_counter() - start,
        "timings_s": timings,
        "peak_rss_bytes": _peak_rss(),
        "pairs": train.counts.to_dict(),
        "tokens": {"src": int(train.src.offsets[-1]), "tgt": int(train.tgt.offsets[-1])},
        "vocab_size": train.tokenizer.vocab_size,
    }


def stage_restart(opts: dict) -> dict[str, Any]:
    from lit_transformer.data.datamodule import collate
    from lit_transformer.data.sampler import TokenBudgetBatchSampler

    dm = _datamodule(opts)
    dm.setup("fit")
    ds = dm.dataset("train")
    sampler = TokenBudgetBatchSampler(ds.src_lens, ds.tgt_lens, opts["max_tokens"], seed=0)
    first = next(iter(sampler))
    collate([ds[i] for i in first])
    ready = time.time() - opts["spawned"]
    start = time.perf_counter()
    sampler.set_epoch(1)
    batches = sampler.epoch_batches()
    epoch_s = time.perf_counter() - start
    return {
        "ready_s": ready,
        "epoch_batches_s": epoch_s,
        "batches": len(batches),
        "pairs": len(ds),
        "peak_rss_bytes": _peak_rss(),
    }


def stage_rank(opts: dict) -> dict[str, Any]:
    import lit_transformer.data.datamodule  # noqa: F401 (imports are not data: before them)
    from lit_transformer.data.sampler import TokenBudgetBatchSampler

    rank, world = opts["rank"], opts["world"]
    before = _memory()
    dm = _datamodule(opts)
    dm.setup("fit")
    ds = dm.dataset("train")
    sampler = TokenBudgetBatchSampler(
        ds.src_lens, ds.tgt_lens, opts["max_tokens"], seed=0, num_replicas=world, rank=rank
    )
    tokens = 0
    for batch in sampler:  # every pair of this rank's shard, as its DataLoader reads them
        for i in batch:
            _, s, t = ds[i]
            tokens += int(s[-1]) + int(t[-1])  # touch the pages
    after = _memory()
    return {
        "rank": rank,
        "before": before,
        "after": after,
        "added": {k: after[k] - before[k] for k in before},
        "ids_bytes": int(ds.src.flat.nbytes + ds.tgt.flat.nbytes),
    }


STAGES = {"prepare": stage_prepare, "restart": stage_restart, "rank": stage_rank}


def _spawn(stage: str, opts: dict) -> subprocess.Popen:
    opts = {**opts, "spawned": time.time()}
    cmd = [sys.executable, "-m", "lit_transformer.bench.data", stage, json.dumps(opts)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench data stage failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def bench_data(
    data_root: str | None,
    workdir: str,
    pairs: int = 4_500_000,
    vocab_size: int = 37_000,
    tokenizer_sentences: int = 2_000_000,
    max_tokens: int = 3125,
    ranks: int = 2,
) -> dict[str, Any]:
    """Build the synthetic corpus (once), then run the three stages on a fresh cache."""
    from lit_transformer.data.corpora import resolve_data_root
    from lit_transformer.precision import cpu_description

    root = resolve_data_root(data_root)
    work = Path(workdir)
    start = time.perf_counter()
    prefix = synthetic_corpus(root, work / f"synthetic-{pairs}" / "train", pairs)
    build_s = time.perf_counter() - start
    cache = work / f"cache-{os.getpid()}-{time.time_ns()}"
    opts = {
        "data_root": str(root),
        "prefix": str(prefix),
        "cache": str(cache),
        "vocab_size": vocab_size,
        "tokenizer_sentences": tokenizer_sentences,
        "max_tokens": max_tokens,
    }
    prepared = _result(_spawn("prepare", opts))
    restart = _result(_spawn("restart", opts))
    procs = [_spawn("rank", {**opts, "rank": r, "world": ranks}) for r in range(ranks)]
    per_rank = [_result(p) for p in procs]
    import torch

    return {
        "cpu": cpu_description(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "corpus": {"prefix": str(prefix), "pairs": pairs, "build_s": build_s},
        "prepare": prepared,
        "restart": restart,
        "ranks": per_rank,
        "cache": str(cache),
    }


if __name__ == "__main__":
    stage, raw = sys.argv[1], sys.argv[2]
    print(json.dumps(STAGES[stage](json.loads(raw))))
