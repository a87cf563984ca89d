"""Command-line options generated from the config dataclasses: ``--model.heads 4`` and so on.

Each field of each section of :class:`~lit_transformer.config.RunConfig` becomes one option,
``--SECTION.FIELD``, with the field's help, type and default; a value is converted by the
field's type (so ``--trainer.precision 32`` stays the string '32' and ``--trainer.devices two``
is one clear error). Options not given are left out, so they never override a lower layer
(an ablation row, a ``--config`` file).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import yaml

from lit_transformer.config import ConfigError, RunConfig, help_of

NULL = ("null", "none", "~")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _bool(text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def _floats(text: str) -> tuple[float, ...]:
    try:
        value = yaml.safe_load(text) if text.startswith("[") else text.split(",")
        return tuple(float(v) for v in value)
    except (yaml.YAMLError, TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be numbers like 0.9,0.98, got {text!r}") from None


def _int_or_float(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return _float(text)


def converter(hint: Any) -> tuple[Callable[[str], Any], str]:
    """(parse, metavar) for a field's type hint."""
    base, optional = hint, False
    if isinstance(hint, types.UnionType):  # X | None, or int | float (| None)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        base = args[0] if len(args) == 1 else int | float
    if base is int:
        parse, name = _int, "INT"
    elif base is float:
        parse, name = _float, "FLOAT"
    elif base is bool:
        parse, name = _bool, "BOOL"
    elif base == int | float:
        parse, name = _int_or_float, "NUMBER"
    elif typing.get_origin(base) is tuple:
        parse, name = _floats, "FLOATS"
    else:
        parse, name = str, "STR"
    if not optional:
        return parse, name

    def parse_optional(text: str) -> Any:
        return None if text.lower() in NULL else parse(text)

    parse_optional.__name__ = parse.__name__
    return parse_optional, f"{name}|null"


def _named(parse: Callable[[str], Any], key: str) -> Callable[[str], Any]:
    """``parse`` whose errors name the option: "trainer.devices must be an integer, …"."""

    def parse_option(text: str) -> Any:
        try:
            return parse(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{key} {exc}") from None

    return parse_option


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--SECTION.FIELD`` option per config field, grouped by section."""
    for section in dataclasses.fields(RunConfig):
        cls = section.default_factory
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        group = parser.add_argument_group(
            f"--{section.name}.*", doc if not doc.startswith(cls.__name__) else None
        )
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            parse, metavar = converter(hints[f.name])
            group.add_argument(
                f"--{section.name}.{f.name}",
                dest=f"{section.name}.{f.name}",
                type=_named(parse, f"{section.name}.{f.name}"),
                metavar=metavar,
                default=argparse.SUPPRESS,
                help=f"{help_of(f)} (default: {_shown(f.default)})",
            )


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted options that were given, as a nested ``{section: {field: value}}``."""
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        section, dot, name = key.partition(".")
        if dot and section in {f.name for f in dataclasses.fields(RunConfig)}:
            out.setdefault(section, {})[name] = list(value) if isinstance(value, tuple) else value
    return out


def reject(unknown: list[str]) -> None:
    """Raise the one-line error for arguments no parser took."""
    import dataclasses as dc

    key = unknown[0][2:].split("=", 1)[0] if unknown[0].startswith("--") else ""
    section, dot, name = key.partition(".")
    sections = {f.name: f.default_factory for f in dc.fields(RunConfig)}
    if dot and section in sections:
        known = ", ".join(f.name for f in dc.fields(sections[section]))
        raise ConfigError(f"unknown option '{section}.{name}' (known: {known})")
    raise ConfigError(f"unrecognized arguments: {' '.join(unknown)}")


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """Dotted options alone (``["--trainer.max_minutes", "2"]``), typed as ``fit`` types them."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_config_options(parser)
    try:
        args, extra = parser.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise ConfigError(exc.message) from None
    if extra:
        raise ConfigError(f"unrecognised option(s): {' '.join(extra)}")
    return config_overrides(args)
