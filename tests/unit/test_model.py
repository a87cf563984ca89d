"""The model's parts against the paper's definitions."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
import torch

from lit_transformer.config import ModelConfig
from lit_transformer.model.attention import MultiHeadAttention
from lit_transformer.model.cache import MemoryCache
from lit_transformer.model.positions import (
    LearnedPositionalEmbedding,
    SequenceTooLongError,
    sinusoid_table,
)
from lit_transformer.model.transformer import Transformer


def tiny(**kw) -> Transformer:
    cfg = dict(n_layers=2, d_model=32, d_ff=48, heads=4, d_k=8, d_v=8, dropout=0.0, vocab_size=40)
    cfg.update(kw)
    torch.manual_seed(0)
    return Transformer(ModelConfig(**cfg)).eval()


def test_attention_with_independent_dk_dv_matches_the_formula():
    torch.manual_seed(0)
    d_model, h, d_k, d_v = 24, 3, 5, 7  # d_k != d_v != d_model / h
    mha = MultiHeadAttention(d_model, h, d_k, d_v)
    assert mha.w_q.weight.shape == (h * d_k, d_model)
    assert mha.w_k.weight.shape == (h * d_k, d_model)
    assert mha.w_v.weight.shape == (h * d_v, d_model)
    assert mha.w_o.weight.shape == (d_model, h * d_v)
    assert all(m.bias is not None for m in (mha.w_q, mha.w_k, mha.w_v, mha.w_o))
    x, mem = torch.randn(2, 4, d_model), torch.randn(2, 6, d_model)
    keep = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    out = mha(x, mem, mask=keep[:, None, None, :])
    # Reference: softmax(Q Kᵀ / √d_k) V per head, concatenated, times W^O.
    q = (x @ mha.w_q.weight.T + mha.w_q.bias).view(2, 4, h, d_k).transpose(1, 2)
    k = (mem @ mha.w_k.weight.T + mha.w_k.bias).view(2, 6, h, d_k).transpose(1, 2)
    v = (mem @ mha.w_v.weight.T + mha.w_v.bias).view(2, 6, h, d_v).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d_k)
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    heads = scores.softmax(-1) @ v
    ref = heads.transpose(1, 2).reshape(2, 4, h * d_v) @ mha.w_o.weight.T + mha.w_o.bias
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_decoder_does_not_see_future_target_tokens():
    model = tiny()
    src = torch.randint(4, 40, (2, 7))
    tgt = torch.randint(4, 40, (2, 9))
    changed = tgt.clone()
    changed[:, 5:] = torch.randint(4, 40, (2, 4))
    a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_padding_in_the_source_is_ignored():
    model = tiny()
    src = torch.randint(4, 40, (1, 5))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    tgt = torch.randint(4, 40, (1, 6))
    torch.testing.assert_close(model(src, tgt), model(padded, tgt), rtol=1e-5, atol=1e-5)


def test_sinusoids_match_the_paper_formula():
    d_model = 16
    table = sinusoid_table(50, d_model)
    for pos in (0, 1, 7, 49):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_learned_positions_reject_too_long_sequences_clearly():
    pos = LearnedPositionalEmbedding(8, max_positions=10)
    assert pos(10).shape == (10, 8)
    with pytest.raises(SequenceTooLongError, match="max_positions=10"):
        pos(11)
    model = tiny(positions="learned", max_positions=6)
    with pytest.raises(SequenceTooLongError):
        model(torch.randint(4, 40, (1, 7)), torch.randint(4, 40, (1, 3)))


def test_embeddings_are_shared_and_scaled():
    model = tiny()
    assert model.src_embed.weight is model.tgt_embed.weight
    n_tied = sum(p.numel() for p in model.parameters())
    untied = tiny(share_embeddings=False)
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert sum(p.numel() for p in untied.parameters()) == n_tied + 2 * 40 * 32
    # logits = h Eᵀ with the same E used at the input.
    hidden = torch.randn(1, 2, 32)
    torch.testing.assert_close(model.project(hidden), hidden @ model.src_embed.weight.T)
    assert model.embed_scale == pytest.approx(math.sqrt(32))


def test_post_ln_layer_order():
    """Encoder layer = LN(x + FFN(LN(x + SelfAttn(x)))) with dropout off."""
    model = tiny(n_layers=1)
    layer = model.encoder[0]
    x = torch.randn(2, 5, 32)
    y = layer.norm_1(x + layer.self_attn(x, x))
    ref = layer.norm_2(y + layer.feed_forward(y))
    torch.testing.assert_close(layer(x, None), ref)


def test_incremental_decoding_matches_full_decoding():
    model = tiny()
    src = torch.randint(4, 40, (3, 6))
    tgt = torch.randint(4, 40, (3, 5))
    memory, mask = model.encode(src)
    full = model.decode(tgt, memory, mask)
    cache = model.new_cache()
    steps = [model.decode(tgt[:, t : t + 1], memory, mask, cache=cache, start=t) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_decoding_sees_the_weights_of_each_call_after_fused_adam_steps():
    """The fused Q|K|V weights live in the decoding cache of one call. Fused Adam updates
    parameters without moving their version counters, so anything kept across calls would go
    stale: incremental decoding after a step must equal full decoding with the new weights."""
    model = tiny()
    src = torch.randint(4, 40, (3, 7))
    tgt = torch.randint(4, 40, (3, 5))
    opt = torch.optim.Adam(model.parameters(), lr=0.05, fused=True)
    for _ in range(2):
        full = model.decode(tgt, *model.encode(src)).detach()  # with autograd: no caching
        with torch.no_grad():
            memory, mask = model.encode(src)
            cache = model.new_cache()
            steps = [
                model.decode(tgt[:, t : t + 1], memory, mask, cache, start=t) for t in range(5)
            ]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
        kept = cache.layers[0].self_attn
        held = {f.name for f in fields(kept) if getattr(kept, f.name) is not None}
        assert held == {"k", "v", "fused_qkv"}
        model.train()
        model(src, tgt).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cache = model.new_cache()
        model.decode(tgt[:, :1], memory, mask, cache, start=0)
    assert cache.layers[0].self_attn.fused_qkv[0].dtype == torch.bfloat16


def test_a_beam_reorder_takes_effect_at_the_next_step():
    """Self-attention keys/values are reordered as the next position is appended: the next
    step sees the rows chosen by ``order`` (two reorders compose) as if decoded that way."""
    model = tiny()
    src = torch.randint(4, 40, (4, 6))
    tgt = torch.randint(4, 40, (4, 3))
    first, second = torch.tensor([2, 2, 0, 1]), torch.tensor([3, 0, 0, 2])
    with torch.no_grad():
        memory, mask = model.encode(src)
        cache = model.new_cache()
        for t in range(2):
            model.decode(tgt[:, t : t + 1], memory, mask, cache, start=t)
        # Each new row is the one hypothesis of another sentence: the encoder's rows move too.
        one_each = torch.zeros(4, 1, dtype=torch.long)
        cache.reorder(one_each, first)
        cache.reorder(one_each, second)
        rows = first[second]
        step = model.decode(tgt[rows, 2:3], memory[rows], mask[rows], cache, start=2)
        full = model.decode(tgt[rows], memory[rows], mask[rows])
    torch.testing.assert_close(step[:, 0], full[:, 2], rtol=1e-5, atol=1e-5)
    assert cache.layers[0].self_attn.pending_rows is None  # applied


def test_the_hypotheses_of_a_sentence_attend_to_its_encoder_output_together():
    """Beam search keeps the encoder keys/values once per sentence; its K hypotheses per
    sentence (rows sentence-major) must get what each would get from its own copy."""
    model = tiny()
    src = torch.randint(4, 40, (3, 6))
    src[1, 3:] = model.pad_id  # a padded sentence: the mask must follow the sentence
    y = torch.randn(3 * 4, 1, model.cfg.d_model)
    rows = torch.arange(3).repeat_interleave(4)
    attn = model.decoder[0].cross_attn
    with torch.no_grad():
        memory, mask = model.encode(src)
        cache = MemoryCache()
        attn(y[::4], memory, mask, cache=cache)  # the first step: one row each
        cache.select(None, width=4)  # then 4 hypotheses per sentence
        plain = attn(y, memory[rows], mask[rows])
        for m in (mask, mask[rows]):  # a mask per sentence or per hypothesis
            grouped = attn(y, memory, m, cache=cache)
            torch.testing.assert_close(grouped, plain, rtol=1e-5, atol=1e-5)
