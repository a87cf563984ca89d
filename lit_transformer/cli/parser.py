"""An ``ArgumentParser`` whose usage errors are one line, like every other user error."""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from lit_transformer.errors import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """Long options are matched whole (``--model.head`` is not ``--model.heads``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """One line and exit status 2 (argparse prints the whole usage first)."""
        # "argument --trainer.devices: trainer.devices must be …": the option once is enough.
        message = re.sub(r"^argument --([\w.]+): (?=\1 )", "", message)
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def decode_precision_option(parser: argparse.ArgumentParser) -> None:
    from lit_transformer.precision import DECODE_PRECISIONS

    parser.add_argument(
        "--precision",
        choices=DECODE_PRECISIONS,
        help="decoding precision (default auto: the training precision where it is fast here, "
        "else 32)",
    )


def decode_options(parser: argparse.ArgumentParser) -> None:
    """``--beam`` and ``--alpha``, defaulting to the paper's decoder (``DecodeConfig``)."""
    from lit_transformer.config import DECODE

    parser.add_argument(
        "--beam", type=int, default=DECODE.beam, help=f"beam size (default {DECODE.beam})"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=DECODE.alpha,
        help=f"length penalty α: score = log P / ((5 + |Y|) / 6)^α (default {DECODE.alpha})",
    )
