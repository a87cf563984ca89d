"""Parameter counts of ablation rows, built on the meta device (no memory, no time)."""

from __future__ import annotations

from typing import Any

import torch

from lit_transformer.ablation import Ablation
from lit_transformer.model.transformer import Transformer, count_parameters


def row_params(ablation: Ablation, row_id: str, vocab_size: int) -> int:
    cfg = ablation.row_config(row_id, {"model": {"vocab_size": vocab_size}})
    with torch.device("meta"):
        return count_parameters(Transformer(cfg.model))


def ablation_params(ablation: Ablation, vocab_size: int) -> list[dict[str, Any]]:
    """Each row's count, its difference to ``base`` and the paper's figures (millions)."""
    counts = {r.id: row_params(ablation, r.id, vocab_size) for r in ablation.rows}
    base = counts.get("base", 0)
    paper_base = ablation.row("base").paper.get("params_millions") if "base" in counts else None
    rows = []
    for r in ablation.rows:
        paper = r.paper.get("params_millions")
        rows.append(
            {
                "row": r.id,
                "params": counts[r.id],
                "delta_m": (counts[r.id] - base) / 1e6,
                "paper_params_m": paper,
                "paper_delta_m": None
                if paper is None or paper_base is None
                else paper - paper_base,
            }
        )
    return rows
