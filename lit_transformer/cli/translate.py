"""``translate``: raw source lines (stdin or ``--input``) to target lines, with beam search."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lit_transformer.cli.parser import decode_options, decode_precision_option
from lit_transformer.config import ConfigError

SUMMARY = "translate raw lines (stdin or --input) with beam search"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--ckpt", required=True)
    p.add_argument("--input", help="file of source lines (default: stdin)")
    decode_options(p)
    decode_precision_option(p)


def run(args: argparse.Namespace) -> int:
    from lit_transformer.decoding.translate import load_translator

    translator = load_translator(args.ckpt, args.precision)
    if args.input and args.input != "-":
        path = Path(args.input)
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    for line in translator.translate(lines, beam=args.beam, alpha=args.alpha):
        print(line)
    return 0
