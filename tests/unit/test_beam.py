"""Beam search: beam 1 is greedy, the cache changes nothing, the length penalty acts."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from lit_transformer.config import ModelConfig
from lit_transformer.decoding.beam import beam_search, greedy_search, length_penalty
from lit_transformer.model.cache import DecoderCache
from lit_transformer.model.transformer import Transformer

PAD, BOS, EOS, A, B = 0, 2, 3, 4, 5


class ScriptedModel:
    """A 'model' whose next-token distribution depends only on the last token:
    after BOS: EOS 0.45, A 0.55; after A: EOS 0.7, B 0.3; after B: EOS 1."""

    pad_id = PAD

    def encode(self, src):
        return torch.zeros(src.size(0), src.size(1), 1), (src != PAD)[:, None, None, :]

    def decode(self, tokens, memory, mask, cache=None, start=0):
        return tokens.float().unsqueeze(-1)

    def project(self, hidden):
        last = hidden[..., 0].long()
        table = torch.full((6, 6), -1e4)  # finite: log_softmax of a row of -inf is NaN
        table[BOS, EOS], table[BOS, A] = math.log(0.45), math.log(0.55)
        table[A, EOS], table[A, B] = math.log(0.7), math.log(0.3)
        table[B, EOS] = 0.0
        return table[last]

    def new_cache(self):
        return DecoderCache([])  # no layers: nothing to reorder


def random_model(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=2, d_model=32, d_ff=64, heads=4, d_k=8, d_v=8, vocab_size=30)
    return Transformer(cfg).eval()


def sources(n: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 30, (n, 9), generator=g)
    for i in range(n):
        length = 3 + i % 6
        src[i, length] = EOS
        src[i, length + 1 :] = PAD
    return src


def test_length_penalty_formula():
    assert length_penalty(1, 0.6) == pytest.approx(1.0)
    assert length_penalty(7, 0.6) == pytest.approx(2.0**0.6)
    assert length_penalty(10, 0.0) == 1.0


def test_length_penalty_changes_the_winner():
    src = torch.tensor([[7, 8, EOS]])
    short = beam_search(ScriptedModel(), src, BOS, EOS, beam=3, alpha=0.0)[0]
    long = beam_search(ScriptedModel(), src, BOS, EOS, beam=3, alpha=2.0)[0]
    assert short.tokens == []  # log 0.45 > log 0.55 + log 0.7
    assert short.logprob == pytest.approx(math.log(0.45))
    assert long.tokens == [A]  # (log .55 + log .7) / lp(2) beats log .45 / lp(1) at α = 2
    assert long.score == pytest.approx((math.log(0.55) + math.log(0.7)) / length_penalty(2, 2.0))


def test_beam_one_is_greedy():
    model, src = random_model(), sources()
    beam = [h.tokens for h in beam_search(model, src, BOS, EOS, beam=1, alpha=0.6)]
    assert beam == greedy_search(model, src, BOS, EOS)


def test_kv_cache_gives_identical_output():
    model, src = random_model(3), sources(5, seed=4)
    cached = beam_search(model, src, BOS, EOS, beam=4, use_cache=True)
    plain = beam_search(model, src, BOS, EOS, beam=4, use_cache=False)
    assert [h.tokens for h in cached] == [h.tokens for h in plain]
    for a, b in zip(cached, plain, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_output_respects_the_maximum_length():
    model, src = random_model(5), sources()
    src_len = ((src != PAD) & (src != EOS)).sum(1)
    for hyp, n in zip(beam_search(model, src, BOS, EOS, beam=4, max_len_b=2), src_len, strict=True):
        assert len(hyp.tokens) <= int(n) + 2 - 1  # EOS takes the last slot
        assert PAD not in hyp.tokens and BOS not in hyp.tokens


def test_batched_search_equals_one_sentence_at_a_time():
    """Sentences leave the batch as they finish; that must not change anyone's result."""
    model, src = random_model(3), sources(6, seed=4)
    rows_seen = []
    decode = model.decode

    def recording_decode(tokens, memory, *args, **kwargs):
        rows_seen.append(tokens.size(0))  # hypotheses decoded at this step
        return decode(tokens, memory, *args, **kwargs)

    model.decode = recording_decode
    batched = beam_search(model, src, BOS, EOS, beam=4, max_len_b=5)
    del model.decode
    # The first step expands one hypothesis per sentence, then K per sentence, fewer as
    # sentences leave the batch.
    assert rows_seen[:2] == [6, 6 * 4] and min(rows_seen) < rows_seen[1]
    assert rows_seen[1:] == sorted(rows_seen[1:], reverse=True)
    for i, hyp in enumerate(batched):
        alone = beam_search(model, src[i : i + 1], BOS, EOS, beam=4, max_len_b=5)[0]
        assert alone.tokens == hyp.tokens
        assert alone.score == pytest.approx(hyp.score, abs=1e-4)


def _casts(fn: Callable[[], object]) -> int:
    """How many dtype conversions ``fn`` runs (weights and activations)."""
    with torch.profiler.profile() as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")


def test_weight_casts_are_cached_within_one_search_and_never_across_searches():
    """Lightning's bf16 autocast runs with its cast cache off. Beam search turns it on for
    its own call: fewer casts, the same hypotheses, and nothing cached outlives the call, even
    when the weights change in place (as fused Adam does, without a version bump) inside the
    same autocast region."""
    model, src = random_model(3), sources(5, seed=4)

    def search(fn=beam_search):
        return [h.tokens for h in fn(model, src, BOS, EOS, beam=4, max_len_b=5)]

    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        assert _casts(search) < 0.8 * _casts(lambda: search(beam_search.__wrapped__))
        before = search()
        assert before == search(beam_search.__wrapped__)
        assert not torch.is_autocast_cache_enabled()  # the caller's setting is back
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(-1.5)  # in place, like a fused optimizer step
        changed = search()
        assert changed != before  # the new weights decode differently…
        assert changed == search(beam_search.__wrapped__)  # …as an uncached search sees them
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert changed == search()  # a fresh autocast region agrees
