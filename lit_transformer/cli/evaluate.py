"""``validate`` / ``test``: score a checkpoint on its dev or test set (PPL and sacreBLEU; with
``--bleu paper`` paper-style BLEU beside sacreBLEU)."""

from __future__ import annotations

import argparse
import json

from lit_transformer.cli.parser import decode_options, decode_precision_option

SUMMARY = {
    "validate": "score a checkpoint on its dev set: perplexity and sacreBLEU",
    "test": "score a checkpoint on its test set: perplexity and sacreBLEU",
}


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data-root", help="data root (default: $LIT_TRANSFORMER_DATA)")
    p.add_argument("--corpus", help="corpus (default: the one it was trained on)")
    p.add_argument(
        "--split",
        help="split or role (default: dev for validate, test for test), or files to score: a "
        "path prefix of PREFIX.{src,tgt}[.gz] or a .tsv[.gz] file",
    )
    decode_options(p)
    decode_precision_option(p)
    p.add_argument(
        "--bleu",
        choices=("sacrebleu", "paper"),
        default="sacrebleu",
        help="sacrebleu (default): sacreBLEU alone; paper: also paper-style BLEU (Moses-tokenised, "
        "compounds split, multi-bleu: t2t's get_ende_bleu.sh), with its own signature",
    )


def run(args: argparse.Namespace) -> int:
    from lit_transformer.decoding.score import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.ckpt,
        stage=args.command,
        data_root=args.data_root,
        beam=args.beam,
        alpha=args.alpha,
        corpus=args.corpus,
        split=args.split,
        precision=args.precision,
        paper_bleu=args.bleu == "paper",
    )
    print(json.dumps(metrics, indent=2))
    return 0
