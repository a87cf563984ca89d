"""Paper-style BLEU (t2t's get_ende_bleu.sh): Moses tokens, compounds split, multi-bleu, checked
against BLEU computed by hand, against sacreBLEU on pre-split text and against Perl itself."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest
from sacrebleu.metrics import BLEU

from lit_transformer.bleu import (
    compound_split,
    corpus_bleu,
    moses_tokenize,
    paper_bleu,
    paper_tokenize,
)

HYPS = ["Die Sommer-Olympiade war toll.", "Ein Mann läuft."]
REFS = ["Die Sommer-Olympiade ist toll.", "Ein alter Mann läuft schnell."]


def test_paper_bleu_equals_bleu_computed_by_hand():
    """Tokens after Moses and the compound split (AT = ##AT##-##AT##):

    hyp 1: Die Sommer AT Olympiade war toll .   (7)   ref 1: Die Sommer AT Olympiade ist toll .  (7)
    hyp 2: Ein Mann läuft .                     (4)   ref 2: Ein alter Mann läuft schnell .      (6)

    clipped matches / hypothesis n-grams, sentence 1 + sentence 2:
    1-grams: Die Sommer AT Olympiade toll . (6/7) + Ein Mann läuft . (4/4)      = 10/11
    2-grams: Die·Sommer Sommer·AT AT·Olympiade toll·. (4/6) + Mann·läuft (1/3)  = 5/9
    3-grams: Die·Sommer·AT Sommer·AT·Olympiade (2/5) + none (0/2)               = 2/7
    4-grams: Die·Sommer·AT·Olympiade (1/4) + none (0/1)                         = 1/5
    lengths c = 11, r = 13: BP = exp(1 − 13/11).
    """
    assert [paper_tokenize(h, "de") for h in HYPS] == [
        "Die Sommer ##AT##-##AT## Olympiade war toll .",
        "Ein Mann läuft .",
    ]
    precisions = [10 / 11, 5 / 9, 2 / 7, 1 / 5]
    bp = math.exp(1 - 13 / 11)
    by_hand = 100 * bp * math.exp(sum(math.log(p) for p in precisions) / 4)
    assert paper_bleu(HYPS, REFS, "de").score == pytest.approx(by_hand, abs=1e-9)
    # No smoothing: with no 4-gram match at all, BLEU is 0 (multi-bleu.perl's rule).
    assert paper_bleu(HYPS[1:], REFS[1:], "de").score == 0.0


def test_paper_bleu_is_sacrebleu_without_tokenising_on_moses_tokens_split_compounds():
    hyps = [*HYPS, 'Er sagt: "Das E-Mail-Konto ist voll" - leider.', "Die 3-D-Brille & ich."]
    refs = [*REFS, 'Er sagte: "Das E-Mail-Konto ist leer" - leider.', "Die 3-D-Brille und ich."]
    # What tokenizer.perl -l de and the Perl substitution give (special characters escaped).
    split = [
        "Die Sommer ##AT##-##AT## Olympiade war toll .",
        "Ein Mann läuft .",
        "Er sagt : &quot; Das E ##AT##-##AT## Mail ##AT##-##AT## Konto ist voll &quot; - leider .",
        "Die 3 ##AT##-##AT## D-Brille &amp; ich .",
    ]
    refs_split = [
        "Die Sommer ##AT##-##AT## Olympiade ist toll .",
        "Ein alter Mann läuft schnell .",
        "Er sagte : &quot; Das E ##AT##-##AT## Mail ##AT##-##AT## Konto ist leer &quot; - leider .",
        "Die 3 ##AT##-##AT## D-Brille und ich .",
    ]
    assert [paper_tokenize(h, "de") for h in hyps] == split
    assert [paper_tokenize(r, "de") for r in refs] == refs_split
    multi_bleu = BLEU(tokenize="none", smooth_method="none", force=True)
    plain = multi_bleu.corpus_score(split, [refs_split])
    result = paper_bleu(hyps, refs, "de")
    assert result.score == pytest.approx(plain.score, abs=1e-12)
    assert 0 < result.score < 100
    # Its own signature: never confused with sacreBLEU's.
    sacre = corpus_bleu(hyps, refs)
    assert sacre.signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert result.signature.startswith("paper-style: moses-tok(de, sacremoses ")
    assert "+compound-split, multi-bleu (sacrebleu nrefs:1|case:mixed|eff:no|tok:none|" in (
        result.signature
    )
    assert "|smooth:none|" in result.signature and result.score != sacre.score
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        paper_bleu(HYPS, REFS[:1], "de")


def test_moses_escapes_as_tokenizer_perl_does_by_default():
    assert moses_tokenize('Er sagt "ja" & <geht> | [weg] \'s', "de") == (
        "Er sagt &quot; ja &quot; &amp; &lt; geht &gt; &#124; &#91; weg &#93; &apos; s"
    )
    assert moses_tokenize("Ein E-Mail-Konto.", "de") == "Ein E-Mail-Konto ."  # no -a


CASES = {
    "a-b-c": "a ##AT##-##AT## b-c",  # non-overlapping: b was used by the first match
    "Sommer-Olympiade": "Sommer ##AT##-##AT## Olympiade",
    "E-Mail-Konto": "E ##AT##-##AT## Mail ##AT##-##AT## Konto",
    "a - b -c d- x--y": "a - b -c d- x ##AT##-##AT## -y",
    "Größen-Änderung": "Größen ##AT##-##AT## Änderung",
}


@pytest.mark.parametrize(("text", "expected"), CASES.items())
def test_compound_split_is_the_perl_substitution(text, expected):
    assert compound_split(text) == expected


@pytest.mark.skipif(shutil.which("perl") is None, reason="no perl")
def test_compound_split_matches_perl_itself():
    lines = list(CASES)
    perl = subprocess.run(
        ["perl", "-ple", r"s{(\S)-(\S)}{$1 ##AT##-##AT## $2}g"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert perl.stdout.splitlines() == [compound_split(line) for line in lines]
