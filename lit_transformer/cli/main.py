"""``lit-transformer``: a table from command name to the module that implements it.

Each ``cli/`` module has ``SUMMARY`` (one help line, or one per command), ``add_arguments(parser,
command)`` and ``run(args) -> int``; user errors end as one ``error: …`` line, status 2.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from lit_transformer.cli import (
    average,
    bench,
    compare,
    dashboard,
    download,
    evaluate,
    fit,
    gpu_check,
    params,
    postgres,
    report,
    slurm,
    sweep,
    sync,
    translate,
    trial,
)
from lit_transformer.cli.options import reject
from lit_transformer.cli.parser import Parser
from lit_transformer.errors import exit_code_of

COMMANDS: dict[str, ModuleType] = {
    "params": params,
    "fit": fit,
    "validate": evaluate,
    "test": evaluate,
    "translate": translate,
    "average": average,
    "sweep": sweep,
    "trial": trial,
    "sync": sync,
    "report": report,
    "compare": compare,
    "dashboard": dashboard,
    "bench": bench,
    "postgres": postgres,
    "slurm": slurm,
    "gpu-check": gpu_check,
    "download": download,
}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lit-transformer", description="Attention Is All You Need, Table 3.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, module in COMMANDS.items():
        summary = module.SUMMARY if isinstance(module.SUMMARY, str) else module.SUMMARY[name]
        module.add_arguments(sub.add_parser(name, help=summary, description=summary), name)
    return p


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)  # bad arguments: one line, status 2
    if unknown:  # an unknown config option names the known ones
        return exit_code_of(lambda: reject(unknown))
    return exit_code_of(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from lit_transformer.malloc import reuse_freed_memory

    reuse_freed_memory()  # a bad LIT_TRANSFORMER_MALLOC is one line too
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
