"""Study specs (``sweeps/*.yaml``): which ablation, which rows × seeds, or which search.

Two kinds:

* ``grid``: every ``rows`` × ``seeds`` pair of an ablation file is one trial, enqueued once.
* ``hpo``: a real search over ``search_space`` (dotted config keys) for one ``row``, with an
  Optuna ``sampler`` and ``pruner`` on dev loss, for ``n_trials`` trials (seeds cycle).

Common keys: ``study`` (default name), ``ablation`` (path, relative to the repository root or
the spec), ``budget`` (below) and ``budget_why`` (how it was chosen, one sentence, shown in the
study's report), ``overrides`` (config patch for every trial), ``devices`` per
trial, ``beam`` for the final evaluation, ``test`` (also score the test set), ``max_retry`` for
trials whose worker died.

Budget kinds, one per protocol, recorded with the study and named in its report:

* ``budget: {steps: N}``: **equal steps**, the paper's protocol. Every row trains exactly N
  optimizer steps on the same batches; ``row_scale: {big: 3}`` multiplies a row's N, as the
  paper's big trains 300k steps against 100k.
* ``budget: {minutes: M}``: **equal training time** (compute-matched): M minutes of training
  steps per row, validation not counted.
* the older ``max_steps`` / ``max_minutes`` set ``trainer.max_steps`` / ``max_minutes`` as
  they are (``max_minutes`` counts periodic validation unless the overrides say otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_transformer.ablation import Ablation, load_ablation
from lit_transformer.config import DECODE, ConfigError, deep_merge, load_yaml

_KEYS = {
    "study",
    "kind",
    "ablation",
    "rows",
    "seeds",
    "row",
    "budget",
    "budget_why",
    "overrides",
    "devices",
    "beam",
    "test",
    "max_retry",
    "sampler",
    "pruner",
    "n_trials",
    "search_space",
    "description",
}
_PARAM_TYPES = {"float", "int", "categorical"}


@dataclass
class SweepSpec:
    path: Path
    study: str
    kind: str
    ablation: Ablation
    rows: list[str]
    seeds: list[int]
    budget: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    devices: int = 1
    beam: int = DECODE.beam
    test: bool = False
    max_retry: int = 2
    sampler: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 0
    search_space: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget_why: str | None = None  # how the budget was chosen, for the report's header

    @property
    def protocol(self) -> str:
        """What the budget holds equal across rows (the report's title names it)."""
        return budget_protocol(self.budget, self.overrides)

    def budget_overrides(self, row: str | None) -> dict[str, Any]:
        """The trainer settings that carry out the budget for ``row``."""
        b = self.budget
        if "steps" in b:
            scale = (b.get("row_scale") or {}).get(row, 1)
            return {"max_steps": int(round(b["steps"] * scale)), "max_minutes": None}
        if "minutes" in b:
            return {"max_minutes": b["minutes"], "max_steps": -1, "budget_counts_validation": False}
        return dict(b)

    @property
    def grid(self) -> list[tuple[str, int]]:
        # Seed-major: the whole table for the first seed comes first, so a sweep stopped early
        # (or read while running) has complete tables rather than complete rows.
        return [(row, seed) for seed in self.seeds for row in self.rows]

    def hpo_seed(self, number: int) -> int:
        """The seed of an hpo study's trial ``number``: the seeds in turn."""
        return self.seeds[number % len(self.seeds)]

    @property
    def trials(self) -> list[tuple[str, int]]:
        """(row, seed) of every trial the study runs, in the order they are created."""
        if self.kind == "grid":
            return self.grid
        return [(self.rows[0], self.hpo_seed(n)) for n in range(self.n_trials)]

    def trial_overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Config patch of one trial: the spec's overrides, the budget, sampled values."""
        budget = self.budget_overrides(params.get("row"))
        patch: dict[str, Any] = deep_merge(self.overrides, {"trainer": budget})
        patch["trainer"]["devices"] = self.devices
        patch.setdefault("decode", {})["beam"] = self.beam
        for key, value in params.items():
            if "." not in key:
                continue  # row / seed are not config values
            node = patch
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return patch


EQUAL_STEPS = "equal steps"
EQUAL_TIME = "equal training time"


def budget_protocol(budget: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    if "steps" in budget or set(budget) == {"max_steps"}:
        return EQUAL_STEPS
    if "minutes" in budget:
        return EQUAL_TIME
    if "max_minutes" in budget:
        trainer = (overrides or {}).get("trainer") or {}
        if trainer.get("budget_counts_validation", True) is False and "max_steps" not in budget:
            return EQUAL_TIME
        return "equal wall time (validation included)" if "max_steps" not in budget else "mixed"
    return "each row's own max_steps"


def _check_budget(path: Path, budget: Any) -> dict[str, Any]:
    if not isinstance(budget, dict):
        raise ConfigError(f"{path}: budget must be a mapping such as {{steps: 3000}}")
    keys = set(budget)
    new = keys & {"steps", "minutes"}
    if new and (len(new) > 1 or keys - {"steps", "minutes", "row_scale"}):
        raise ConfigError(f"{path}: budget takes one of steps or minutes (with row_scale)")
    if not new and keys - {"max_steps", "max_minutes"}:
        raise ConfigError(
            f"{path}: budget takes steps or minutes (or the older max_steps and/or max_minutes)"
        )
    if "row_scale" in keys and ("steps" not in keys or not isinstance(budget["row_scale"], dict)):
        raise ConfigError(f"{path}: budget.row_scale maps rows to step multipliers, with steps")
    for row, scale in (budget.get("row_scale") or {}).items():
        ok = isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0
        if not ok or round(budget["steps"] * scale) < 1:
            raise ConfigError(f"{path}: budget.row_scale.{row} must be a positive number")
    for key in ("steps", "minutes", "max_steps", "max_minutes"):
        value = budget.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{path}: budget.{key} must be a number, got {value!r}")
        if key in ("steps", "minutes") and value is not None and value <= 0:
            raise ConfigError(f"{path}: budget.{key} must be positive, got {value!r}")
    return budget


def _resolve(path_text: str, spec_path: Path) -> Path:
    path = Path(path_text)
    if path.is_absolute() or path.exists():
        return path
    beside = spec_path.parent / path
    if beside.exists():
        return beside
    repo = spec_path.resolve().parent.parent / path
    return repo if repo.exists() else path


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep spec must be a mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}")
    kind = raw.get("kind", "grid")
    if kind not in ("grid", "hpo"):
        raise ConfigError(f"{path}: kind must be 'grid' or 'hpo', got {kind!r}")
    if "ablation" not in raw:
        raise ConfigError(f"{path}: needs 'ablation' (an ablations/*.yaml file)")
    ablation = load_ablation(_resolve(str(raw["ablation"]), path))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers")
    if kind == "grid":
        rows = raw.get("rows", "all")
        rows = ablation.row_ids if rows == "all" else rows
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"{path}: rows must be 'all' or a list of row ids")
    else:
        rows = [raw.get("row", "base")]
    for row in rows:
        ablation.row(str(row))  # unknown row -> one clear line
    budget = _check_budget(path, raw.get("budget") or {})  # absent: each row's own max_steps
    why = raw.get("budget_why")
    if why is not None and not (isinstance(why, str) and why.strip()):
        raise ConfigError(f"{path}: budget_why must be a sentence saying how the budget was chosen")
    spec = SweepSpec(
        path=path,
        study=str(raw.get("study", path.stem)),
        kind=kind,
        ablation=ablation,
        rows=[str(r) for r in rows],
        seeds=seeds,
        budget=budget,
        overrides=raw.get("overrides") or {},
        devices=int(raw.get("devices", 1)),
        beam=int(raw.get("beam", DECODE.beam)),
        test=bool(raw.get("test", False)),
        max_retry=int(raw.get("max_retry", 2)),
        sampler=raw.get("sampler") or {"name": "tpe"},
        pruner=raw.get("pruner") or {"name": "none"},
        n_trials=int(raw.get("n_trials", 0)),
        search_space=raw.get("search_space") or {},
        budget_why=" ".join(why.split()) if why else None,
    )
    if kind == "hpo":
        if spec.n_trials <= 0:
            raise ConfigError(f"{path}: an hpo spec needs n_trials > 0")
        if not spec.search_space:
            raise ConfigError(f"{path}: an hpo spec needs a search_space")
        for key, dist in spec.search_space.items():
            if not isinstance(dist, dict) or dist.get("type") not in _PARAM_TYPES:
                raise ConfigError(
                    f"{path}: search_space.{key} needs type float, int or categorical"
                )
    # Every trial's configuration must be valid before anything runs.
    for row in spec.rows:
        ablation.row_config(row, spec.trial_overrides({"row": row}))
    for row in budget.get("row_scale") or {}:
        ablation.row(str(row))
    return spec
