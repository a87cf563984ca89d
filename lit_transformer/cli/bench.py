"""``bench train|decode|choices|batching|claims|data``: speed and efficiency on this machine."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lit_transformer.cli.parser import Parser, decode_precision_option
from lit_transformer.config import DECODE, ConfigError

SUMMARY = "benchmarks: train throughput, decoding, kernel choices, batching, claims, data"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    from lit_transformer.precision import DECODE_PRECISIONS

    sub = p.add_subparsers(dest="what", required=True, parser_class=Parser)
    b = sub.add_parser("train", help="training step vs plain nn.Transformer")
    for name, default in (
        ("d-model", 256),
        ("heads", 4),
        ("layers", 3),
        ("d-ff", 1024),
        ("vocab-size", 8000),
        ("batch-size", 64),
        ("src-len", 20),
        ("tgt-len", 20),
        ("steps", 10),
        ("rounds", 3),
    ):
        b.add_argument(f"--{name}", type=int, default=default)
    b.add_argument("--precision", choices=DECODE_PRECISIONS, default="auto")
    b.add_argument("--json", action="store_true")
    b = sub.add_parser("decode", help="beam search with and without the KV cache")
    b.add_argument("--ckpt", required=True)
    b.add_argument("--data-root")
    b.add_argument("--split", default="test")
    b.add_argument("--beam", type=int, default=DECODE.beam)
    b.add_argument("--limit", type=int, help="first N sentences only")
    decode_precision_option(b)
    b.add_argument("--json", action="store_true")
    b = sub.add_parser(
        "choices", help="each CPU-specific kernel choice against its alternative, on this CPU"
    )
    b.add_argument("--precision", choices=DECODE_PRECISIONS, default="auto")
    b.add_argument("--reps", type=int, default=20)
    b.add_argument("--json", action="store_true")
    b = sub.add_parser("batching", help="real-token fraction of training batches")
    b.add_argument("--corpus", default="multi30k")
    b.add_argument("--vocab-size", type=int, default=8000)
    b.add_argument("--max-tokens", type=int, default=2048)
    b.add_argument("--data-root")
    b.add_argument("--json", action="store_true")
    b = sub.add_parser(
        "data", help="paper-scale data path on a synthetic WMT14-sized corpus: time and memory"
    )
    b.add_argument("--data-root")
    b.add_argument("--workdir", required=True, help="synthetic corpus and a fresh cache go here")
    b.add_argument("--pairs", type=int, default=4_500_000)
    b.add_argument("--vocab-size", type=int, default=37_000)
    b.add_argument("--tokenizer-sentences", type=int, default=2_000_000)
    b.add_argument("--max-tokens", type=int, default=3125)
    b.add_argument("--ranks", type=int, default=2)
    b.add_argument("--json", action="store_true")
    b = sub.add_parser("claims", help="trials claimed per second by N workers of one study")
    b.add_argument("--storage", required=True, help="sqlite:///FILE or postgresql:// URL")
    b.add_argument("--workers", type=int, default=8)
    b.add_argument("--trials", type=int, default=400)
    b.add_argument("--json", action="store_true")


def _train(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from lit_transformer.bench.train import TrainShape, bench_train

    shape = TrainShape(
        d_model=args.d_model,
        heads=args.heads,
        layers=args.layers,
        d_ff=args.d_ff,
        vocab_size=args.vocab_size,
        batch_size=args.batch_size,
        src_len=args.src_len,
        tgt_len=args.tgt_len,
        precision=args.precision,
    )
    r = bench_train(shape, steps=args.steps, rounds=args.rounds)
    return r, (
        f"{r['cpu']}, {r['threads']} threads, {r['precision']} ({r['precision_reason']})\n"
        f"ours {r['ours']['tgt_tokens_per_s']:.0f} tgt tok/s, "
        f"{r['ours']['flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"({100 * r['ours']['fraction_of_peak']:.0f}% of measured matmul peak "
        f"{r['matmul_peak'] / 1e9:.0f}); plain nn.Transformer "
        f"{r['plain_pytorch']['tgt_tokens_per_s']:.0f} tgt tok/s; "
        f"speed-up {r['speedup_vs_plain']:.2f}x"
    )


def _decode(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from lit_transformer.bench.decode import bench_decode

    r = bench_decode(args.ckpt, args.data_root, args.split, args.beam, args.limit, args.precision)
    return r, (
        f"{r['cpu']}, {r['threads']} threads\n"
        f"{r['sentences']} sentences, beam {r['beam']}, {r['precision']}: cached "
        f"{r['cached']['seconds']:.1f} s ({r['cached']['sentences_per_s']:.1f}/s), "
        f"uncached {r['uncached']['seconds']:.1f} s; speed-up {r['cache_speedup']:.2f}x, "
        f"identical output: {r['identical_output']}"
    )


def _choices(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from lit_transformer.bench.choices import bench_choices

    if args.reps < 1:
        raise ConfigError(f"--reps must be at least 1, got {args.reps}")
    r = bench_choices(args.precision, args.reps)
    lines = [f"{r['cpu']}, {r['threads']} threads, {r['precision']}"]
    lines.append("runs here: " + ", ".join(f"{k}={v}" for k, v in r["kernels"].items()))
    for name, c in r["choices"].items():
        lines.append(
            f"{name}: ours {c['ours_ms']:.2f} ms, alternative {c['alternative_ms']:.2f} ms, "
            f"{c['speedup']:.2f}x"
        )
    return r, "\n".join(lines)


def _batching(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from lit_transformer.bench.batching import bench_batching

    r = bench_batching(args.corpus, args.vocab_size, args.max_tokens, args.data_root)
    return r, (
        f"{r['corpus']}: {r['batches']} batches of <= {r['max_tokens']} tokens, "
        f"real-token fraction {r['real_token_fraction']:.3f}"
    )


def _data(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from lit_transformer.bench.data import bench_data

    if min(args.pairs, args.vocab_size, args.tokenizer_sentences, args.ranks) < 1:
        raise ConfigError("--pairs, --vocab-size, --tokenizer-sentences and --ranks must be >= 1")
    r = bench_data(
        args.data_root,
        args.workdir,
        args.pairs,
        args.vocab_size,
        args.tokenizer_sentences,
        args.max_tokens,
        args.ranks,
    )
    p, t, gb = r["prepare"], r["prepare"]["timings_s"], 1 << 30
    added = ", ".join(f"{x['added']['anonymous'] / (1 << 20):.0f}" for x in r["ranks"])
    return r, (
        f"{r['cpu']}\n{p['pairs']['read']} pairs, kept {p['pairs']['kept']}: prepared in "
        f"{p['wall_s']:.0f} s (scan {t.get('scan_s', 0):.0f}, tokenizer "
        f"{t.get('tokenizer_s', 0):.0f}, encode {t.get('encode_s', 0):.0f}), peak RSS "
        f"{p['peak_rss_bytes'] / gb:.2f} GiB\ncached restart ready to train in "
        f"{r['restart']['ready_s']:.1f} s; one epoch's {r['restart']['batches']} batches in "
        f"{r['restart']['epoch_batches_s']:.1f} s\nheap added per rank ({len(r['ranks'])} "
        f"ranks): {added} MiB; ids memory-mapped: {r['ranks'][0]['ids_bytes'] / gb:.2f} GiB"
    )


def _claims(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from lit_transformer.bench.claims import bench_claims

    r = bench_claims(args.storage, args.workers, args.trials)
    w, h = r["lock_wait"], r["lock_held"]
    return r, (
        f"{r['hardware']}; {r['storage']}\n{r['trials']} claims by {r['workers']} workers in "
        f"{r['wall_s']:.1f} s ({r['claims_per_s']:.1f}/s with start-up); lock held "
        f"{h['mean_ms']:.1f} ms mean, {h['p95_ms']:.1f} p95 (at most "
        f"{r['max_claims_per_s']:.0f} claims/s); wait {w['mean_ms']:.1f} ms mean, "
        f"{w['p95_ms']:.1f} p95, {w['max_ms']:.1f} max"
    )


BENCHES = {
    "train": _train,
    "decode": _decode,
    "choices": _choices,
    "batching": _batching,
    "claims": _claims,
    "data": _data,
}


def run(args: argparse.Namespace) -> int:
    result, text = BENCHES[args.what](args)
    print(json.dumps(result, indent=2) if args.json else text)
    return 0
