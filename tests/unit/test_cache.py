"""The decoding cache: reorders select the right hypotheses, cached attention equals attention
over the whole prefix, and beam search decodes the same with and without the cache."""

from __future__ import annotations

import pytest
import torch

from lit_transformer.config import ModelConfig
from lit_transformer.decoding.beam import beam_search
from lit_transformer.model.attention import MultiHeadAttention
from lit_transformer.model.cache import (
    DecoderCache,
    LayerCache,
    MemoryCache,
    SelfAttentionCache,
    hypothesis_rows,
)
from lit_transformer.model.transformer import Transformer

PAD, BOS, EOS = 0, 2, 3


def labelled(rows: int, steps: int = 1, base: float = 0.0) -> torch.Tensor:
    """[rows, 1, steps, 1] with value base + 10·row + step: each row and step recognisable."""
    row = torch.arange(rows, dtype=torch.float32)[:, None] * 10
    return (base + row + torch.arange(steps, dtype=torch.float32)).view(rows, 1, steps, 1)


def row_labels(kv: torch.Tensor, step: int = 0) -> list[int]:
    return [int(x) // 10 for x in kv[:, 0, step, 0].tolist()]


def test_hypothesis_rows_index_within_each_sentence():
    beams = torch.tensor([[1, 1, 0], [2, 0, 1]])
    assert hypothesis_rows(beams, None, 3).tolist() == [1, 1, 0, 5, 3, 4]
    # The second step's sentence 0 is the current sentence 2.
    assert hypothesis_rows(beams, torch.tensor([2, 0]), 3).tolist() == [7, 7, 6, 2, 0, 1]


def test_self_attention_reorder_waits_for_the_next_append_and_composes():
    cache = SelfAttentionCache()
    cache.append(labelled(3, 2), labelled(3, 2, base=0.5))
    cache.reorder(torch.tensor([2, 0, 1, 1]))
    cache.reorder(torch.tensor([3, 0, 0, 1]))  # of the rows the first reorder chose
    assert cache.k is not None and row_labels(cache.k) == [0, 1, 2]  # not copied yet
    new_k, new_v = labelled(4, base=100.0), labelled(4, base=100.5)
    k, v = cache.append(new_k, new_v)
    assert row_labels(k) == [1, 2, 2, 0] and row_labels(v) == [1, 2, 2, 0]
    assert k.shape == (4, 1, 3, 1)
    torch.testing.assert_close(k[:, :, :2], labelled(3, 2)[[1, 2, 2, 0]])
    torch.testing.assert_close(k[:, :, 2:], new_k)  # the new position is not reordered
    torch.testing.assert_close(v[:, :, :2], labelled(3, 2, base=0.5)[[1, 2, 2, 0]])
    assert cache.pending_rows is None


def test_decoder_cache_moves_beams_within_sentences_and_drops_finished_sentences():
    cache = DecoderCache([LayerCache(), LayerCache()])
    for layer in cache.layers:
        layer.self_attn.append(labelled(2), labelled(2))  # first step: one row per sentence
        layer.memory.store(labelled(2, 4), labelled(2, 4))
    cache.reorder(torch.zeros(2, 3, dtype=torch.long))  # grow to 3 beams each
    assert cache.width == 3
    for layer in cache.layers:
        k, _ = layer.self_attn.append(labelled(6, base=1000.0), labelled(6, base=1000.0))
        assert row_labels(k) == [0, 0, 0, 1, 1, 1]
    cache.reorder(torch.tensor([[2, 2, 0], [1, 0, 0]]))  # rows [2, 2, 0, 4, 3, 3]
    cache.reorder(torch.tensor([[2, 0, 1]]), sentences=torch.tensor([1]))  # sentence 0 is done
    for layer in cache.layers:
        k, v = layer.self_attn.append(labelled(3, base=2000.0), labelled(3, base=2000.0))
        assert row_labels(k) == [1, 1, 1]  # all of sentence 1…
        assert row_labels(k, step=1) == [103, 104, 103]  # …rows [4, 3, 3][[2, 0, 1]]
        assert row_labels(k, step=2) == [200, 201, 202]  # the new position, as given
        torch.testing.assert_close(k, v)
        assert layer.memory.k is not None and row_labels(layer.memory.k) == [1]
        assert layer.memory.width == 3


def test_the_encoder_rows_are_selected_only_when_sentences_leave():
    cache = DecoderCache([LayerCache()])
    memory = cache.layers[0].memory
    memory.store(labelled(3, 4), labelled(3, 4))
    before = memory.k
    cache.reorder(torch.tensor([[1, 0], [0, 0], [1, 1]]))
    assert memory.k is before  # beams moved within their sentences: nothing to copy
    cache.reorder(torch.tensor([[1, 0], [0, 0]]), sentences=torch.tensor([2, 0]))
    assert memory.k is not None and row_labels(memory.k) == [2, 0]


def test_self_attention_with_a_cache_equals_attention_over_the_full_prefix():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, 3, 5).eval()
    x = torch.randn(3, 6, 16)
    rows = torch.tensor([2, 2, 0])
    with torch.no_grad():
        cache = SelfAttentionCache()
        steps = [mha(x[:, t : t + 1], x[:, t : t + 1], cache=cache) for t in range(4)]
        full = mha(x[:, :4], x[:, :4], is_causal=True)
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
        # After a reorder, row i continues the prefix of row rows[i].
        cache.reorder(rows)
        prefix = torch.cat([x[rows, :4], x[:, 4:5]], dim=1)
        step = mha(x[:, 4:5], x[:, 4:5], cache=cache)
        full = mha(prefix, prefix, is_causal=True)
    torch.testing.assert_close(step[:, 0], full[:, 4], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width", [1, 3])
def test_memory_attention_with_a_cache_equals_attention_over_each_rows_own_memory(width):
    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 4, 3, 5).eval()
    memory = torch.randn(2, 7, 16)
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 4:] = False
    rows = torch.arange(2).repeat_interleave(width)
    y = torch.randn(2 * width, 1, 16)
    with torch.no_grad():
        cache = MemoryCache()
        mha(y[::width], memory, mask, cache=cache)
        cache.select(None, width)
        cached = mha(y, memory, mask, cache=cache)
        plain = mha(y, memory[rows], mask[rows])
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-5)


def tiny_model(seed: int) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=2, d_model=32, d_ff=64, heads=4, d_k=8, d_v=8, vocab_size=40)
    return Transformer(cfg).eval()


def varied_sources(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 40, (n, 12), generator=g)
    for i in range(n):
        length = 2 + (i * 5) % 9
        src[i, length] = EOS
        src[i, length + 1 :] = PAD
    return src


@pytest.mark.parametrize(("seed", "beam", "max_len_b"), [(0, 2, 4), (1, 4, 3), (2, 5, 8)])
def test_cached_and_uncached_beam_search_give_the_same_hypotheses(seed, beam, max_len_b):
    """Sentences of different lengths, so they leave the batch at different steps and the
    cache's beams and encoder rows are reordered and dropped along the way."""
    model, src = tiny_model(seed), varied_sources(7, seed + 10)
    cached = beam_search(model, src, BOS, EOS, beam=beam, max_len_b=max_len_b)
    plain = beam_search(model, src, BOS, EOS, beam=beam, max_len_b=max_len_b, use_cache=False)
    assert [h.tokens for h in cached] == [h.tokens for h in plain]
    assert len({len(h.tokens) for h in cached}) > 1  # they did not all stop together
    for a, b in zip(cached, plain, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
