"""``bench decode``: beam search on a real test set, with and without the KV cache."""

from __future__ import annotations

import time
from typing import Any

import torch

from lit_transformer.bench.train import matmul_peak
from lit_transformer.config import DECODE


def bench_decode(
    ckpt: str,
    data_root: str | None = None,
    split: str = "test",
    beam: int = DECODE.beam,
    limit: int | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """Sentences/s of beam search on a real test set, with and without the KV cache, and the
    matmul peak measured right after (the VM's speed drifts: compare within one run)."""
    from lit_transformer.bleu import corpus_bleu
    from lit_transformer.data.corpora import load_split, resolve_data_root
    from lit_transformer.decoding.translate import Translator, load_module
    from lit_transformer.precision import cpu_description

    module = load_module(ckpt)
    d = module.cfg.data
    srcs, refs = load_split(resolve_data_root(data_root), d.corpus, split, d.src_lang, d.tgt_lang)
    if limit:
        srcs, refs = srcs[:limit], refs[:limit]
    translator = Translator(module, precision=precision)
    out: dict[str, Any] = {
        "checkpoint": ckpt,
        "split": split,
        "sentences": len(srcs),
        "beam": beam,
        "precision": translator.precision,
        "trained_precision": module.cfg.trainer.precision,
        "cpu": cpu_description(),
        "threads": torch.get_num_threads(),
    }
    translator.translate(srcs[:50], beam=beam)  # warm-up: first calls allocate and dispatch
    hyps = {}
    for use_cache in (True, False):
        t = time.perf_counter()
        hyps[use_cache] = translator.translate(srcs, beam=beam, use_cache=use_cache)
        sec = time.perf_counter() - t
        key = "cached" if use_cache else "uncached"
        out[key] = {
            "seconds": sec,
            "sentences_per_s": len(srcs) / sec,
            "bleu": corpus_bleu(hyps[use_cache], refs).score,
        }
    out["identical_output"] = hyps[True] == hyps[False]
    out["cache_speedup"] = out["uncached"]["seconds"] / out["cached"]["seconds"]
    out["matmul_peak_fp32"] = matmul_peak(torch.float32)
    return out
