"""The model can learn: it memorises a small batch of real sentence pairs."""

from __future__ import annotations

import torch

from lit_transformer.config import ModelConfig
from lit_transformer.decoding.beam import greedy_search
from lit_transformer.model.transformer import Transformer
from lit_transformer.training.loss import label_smoothed_loss

BOS, EOS, PAD = 2, 3, 0


def test_overfits_a_small_batch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    b, vocab = 8, 60
    lengths = [4 + i % 5 for i in range(b)]
    src = torch.zeros(b, 10, dtype=torch.long)
    tgt = torch.zeros(b, 10, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        src[i, n] = EOS
        tgt[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        tgt[i, n] = EOS
    tgt_in = torch.cat([torch.full((b, 1), BOS), tgt[:, :-1]], dim=1)
    tgt_in[tgt_in == EOS] = PAD
    model = Transformer(
        ModelConfig(
            n_layers=2, d_model=64, d_ff=128, heads=4, d_k=16, d_v=16, dropout=0.0, vocab_size=vocab
        )
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
    first = None
    for _ in range(150):
        loss = label_smoothed_loss(model(src, tgt_in), tgt, 0.0, PAD)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 < first
    model.eval()
    out = greedy_search(model, src, BOS, EOS)
    assert out == [tgt[i, : lengths[i]].tolist() for i in range(b)]
