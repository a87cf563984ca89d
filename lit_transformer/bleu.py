"""Corpus BLEU with its signature (rule *corpus BLEU*, ARCHITECTURE.md): sacreBLEU on
detokenised text, the suite's BLEU, and beside it paper-style BLEU, as the paper's numbers
(27.3 / 28.4 EN-DE) were computed.

Paper-style BLEU is tensor2tensor's ``get_ende_bleu.sh``; fairseq's
``scripts/compound_split_bleu.sh`` runs steps 2 and 3 on text Moses-tokenised in preprocessing:

1. Moses ``tokenizer.perl -l LANG`` on hypotheses and references, with its default escaping
   (``&`` → ``&amp;``, ``"`` → ``&quot;`` …; sacremoses' ``escape=True``);
2. hyphen compounds split by ``perl -ple 's{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g'``
   (non-overlapping: ``a-b-c`` → ``a ##AT##-##AT## b-c``);
3. ``multi-bleu.perl`` on whitespace tokens, case-sensitive, one reference: with m_n the
   clipped n-gram matches and t_n the hypothesis n-grams summed over the corpus,
   p_n = m_n / t_n, BP = min(1, exp(1 − r / c)) for corpus lengths c (hypotheses) and r
   (references), and BLEU = 100 · BP · exp(¼ Σ_{n=1..4} log p_n), 0 when any m_n is 0 (no
   smoothing). That is sacreBLEU's ``BLEU(tokenize="none", smooth_method="none")``.

Moses tokens and split compounds add n-grams that are easy to match (``##AT##-##AT##`` among
them), so paper-style BLEU usually reads higher than sacreBLEU on the same hypotheses: the two
are never compared with each other, and each carries its own signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sacrebleu.metrics import BLEU

# ASCII \S: ``perl -ple`` reads bytes, where only ASCII whitespace is \s.
_COMPOUND = re.compile(r"(\S)-(\S)", re.ASCII)


@dataclass
class BleuResult:
    score: float
    signature: str
    text: str


def corpus_bleu(hypotheses: list[str], references: list[str]) -> BleuResult:
    """sacreBLEU's default BLEU (13a tokenisation, exp smoothing, case-sensitive)."""
    _check_lengths(hypotheses, references)
    bleu = BLEU()
    result = bleu.corpus_score(hypotheses, [references])
    return BleuResult(result.score, str(bleu.get_signature()), str(result))


def compound_split(line: str) -> str:
    """``s{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g``: ``Sommer-Olympiade`` → ``Sommer ##AT##-##AT##
    Olympiade``. Like Perl's ``/g``, ``re.sub`` resumes after each match, so in ``a-b-c`` the
    second hyphen (whose left ``b`` the first match used) stays."""
    return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", line)


@lru_cache(maxsize=4)
def _moses(lang: str) -> Any:
    from sacremoses import MosesTokenizer

    return MosesTokenizer(lang=lang)  # loads the language's non-breaking prefixes: keep it


def moses_tokenize(line: str, lang: str) -> str:
    """``tokenizer.perl -l lang`` with its defaults: no aggressive hyphen splitting (``-a``),
    special characters escaped (no ``-no-escape``)."""
    return _moses(lang).tokenize(line, return_str=True, escape=True)


def paper_tokenize(line: str, lang: str) -> str:
    """What ``multi-bleu.perl`` reads in ``get_ende_bleu.sh``: Moses tokens, compounds split."""
    return compound_split(moses_tokenize(line, lang))


def paper_signature(lang: str, sacrebleu_signature: str) -> str:
    """``paper-style: moses-tok(de, sacremoses 0.2.0)+compound-split, multi-bleu (sacrebleu
    nrefs:1|…|tok:none|smooth:none|version:…)``: never mistaken for sacreBLEU's (``tok:13a``)."""
    from importlib.metadata import version

    moses = f"moses-tok({lang}, sacremoses {version('sacremoses')})"
    return f"paper-style: {moses}+compound-split, multi-bleu (sacrebleu {sacrebleu_signature})"


def paper_bleu(hypotheses: list[str], references: list[str], lang: str) -> BleuResult:
    """Paper-style BLEU of detokenised ``hypotheses`` against raw ``references`` in the target
    language ``lang`` (module docstring: Moses tokens, compounds split, multi-bleu)."""
    _check_lengths(hypotheses, references)
    hyps = [paper_tokenize(h, lang) for h in hypotheses]
    refs = [paper_tokenize(r, lang) for r in references]
    # force: the input is tokenised on purpose (sacreBLEU would warn about it).
    bleu = BLEU(tokenize="none", smooth_method="none", force=True)
    result = bleu.corpus_score(hyps, [refs])
    signature = paper_signature(lang, str(bleu.get_signature()))
    return BleuResult(result.score, signature, str(result))


def _check_lengths(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
