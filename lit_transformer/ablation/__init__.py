"""Ablation files: Table 3 as data.

An ablation file (``ablations/*.yaml``) holds ``defaults`` (a full run configuration: model,
data, optim, trainer) and a list of ``rows``. Each row has an ``id`` (``base``, ``A-h1`` …),
its Table 3 ``group``, a one-line ``changes`` text, the paper's figures under ``paper`` and
overrides of any config section. A row's run configuration is defaults ⊕ row overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_transformer.config import ConfigError, RunConfig, deep_merge, load_yaml

_SECTIONS = ("model", "data", "optim", "trainer")


@dataclass
class AblationRow:
    id: str
    group: str
    changes: str
    paper: dict[str, Any]
    overrides: dict[str, Any]


@dataclass
class Ablation:
    path: Path
    scale: str
    description: str
    defaults: dict[str, Any]
    rows: list[AblationRow] = field(default_factory=list)

    @property
    def row_ids(self) -> list[str]:
        return [r.id for r in self.rows]

    def row(self, row_id: str) -> AblationRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise ConfigError(
            f"unknown row '{row_id}' in {self.path} (rows: {', '.join(self.row_ids)})"
        )

    def row_dict(self, row_id: str) -> dict[str, Any]:
        return deep_merge(self.defaults, self.row(row_id).overrides)

    def row_config(self, row_id: str, overrides: dict[str, Any] | None = None) -> RunConfig:
        raw = deep_merge(self.row_dict(row_id), overrides or {})
        try:
            return RunConfig.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{self.path} row '{row_id}': {exc}") from None


def load_ablation(path: str | Path) -> Ablation:
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), list):
        raise ConfigError(f"{path}: an ablation file needs a 'rows' list")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping")
    ablation = Ablation(
        path=path,
        scale=str(raw.get("scale", "")),
        description=str(raw.get("description", "")),
        defaults=defaults,
    )
    seen: set[str] = set()
    for i, entry in enumerate(raw["rows"]):
        if not isinstance(entry, dict) or not entry.get("id"):
            raise ConfigError(f"{path}: row #{i + 1} needs an 'id'")
        row_id = str(entry["id"])
        if row_id in seen:
            raise ConfigError(f"{path}: row '{row_id}' appears twice")
        seen.add(row_id)
        unknown = set(entry) - {"id", "group", "changes", "paper", *_SECTIONS}
        if unknown:
            raise ConfigError(f"{path}: row '{row_id}' has unknown key(s) {sorted(unknown)}")
        ablation.rows.append(
            AblationRow(
                id=row_id,
                group=str(entry.get("group", "")),
                changes=str(entry.get("changes", "")),
                paper=dict(entry.get("paper") or {}),
                overrides={k: entry[k] for k in _SECTIONS if k in entry},
            )
        )
    # Validate every row now: a typo in row 17 should not surface after 16 trained rows.
    for r in ablation.rows:
        ablation.row_config(r.id)
    return ablation
