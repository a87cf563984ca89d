"""Optuna samplers and pruners by name, as a sweep spec gives them."""

from __future__ import annotations

from typing import Any

import optuna

from lit_transformer.config import ConfigError


def build_sampler(config: dict[str, Any]) -> optuna.samplers.BaseSampler:
    cfg = dict(config)
    name = cfg.pop("name", "tpe")
    if name == "tpe":
        return optuna.samplers.TPESampler(**cfg)
    if name == "random":
        return optuna.samplers.RandomSampler(**cfg)
    raise ConfigError(f"unknown sampler {name!r} (tpe, random)")


def build_pruner(config: dict[str, Any]) -> optuna.pruners.BasePruner:
    cfg = dict(config)
    name = cfg.pop("name", "none")
    if name == "median":
        return optuna.pruners.MedianPruner(**cfg)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**cfg)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r} (median, hyperband, none)")
