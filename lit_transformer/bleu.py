"""Corpus BLEU with sacreBLEU on detokenised text, with its signature (rule *corpus BLEU*,
ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU


@dataclass
class BleuResult:
    score: float
    signature: str
    text: str


def corpus_bleu(hypotheses: list[str], references: list[str]) -> BleuResult:
    """sacreBLEU's default BLEU (13a tokenisation, exp smoothing, case-sensitive)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu = BLEU()
    result = bleu.corpus_score(hypotheses, [references])
    return BleuResult(result.score, str(bleu.get_signature()), str(result))
