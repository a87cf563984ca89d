"""Batched beam search (§6.1): beam 4, length penalty α = 0.6, max length = source + 50.

Hypotheses are ranked by log P(Y|X) / lp(Y) with the GNMT length penalty

    lp(Y) = ((5 + |Y|) / 6)^α,

|Y| counting the generated tokens including EOS. A sentence stops ("terminating early when
possible") once it has ``beam`` finished hypotheses, or once no live beam can beat its best
finished one: a live beam's log-probability can only fall, and lp is largest at the maximum
length, so score_live / lp(max_len) bounds what it can still reach. Beam 1 is greedy search.

Decoding is incremental: the decoder caches self-attention keys/values per layer and the
encoder–decoder keys/values are projected once per sentence (``use_cache=False`` recomputes
the whole prefix at each step, for benchmarks and tests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_transformer.model.transformer import Transformer

# Source tokens (padding included) per beam-search call. A batch decodes until its slowest
# sentence is done, at a fixed cost per step however few sentences are left; larger batches
# share those tails. Beam-4 decoding of the Multi30k dev set (1,014 sentences) by two partly
# trained models took 10–15% less time at 3 × 2,048 source tokens per call than at 2,048, and
# 30% more in one call of all 1,014 (copying the caches grows with the batch), on the
# project's 2-core CPU (BENCHMARKS.md).
DECODE_BATCH_TOKENS = 6144


def cached_weight_casts(
    search: Callable[..., list[Hypothesis]],
) -> Callable[..., list[Hypothesis]]:
    """Run ``search(model, src, …)`` with autocast's cache of parameter casts on.

    Lightning enters autocast with ``cache_enabled=False``, so under bf16-mixed every linear
    layer would cast its fp32 weight again at every generated token: about 40% of a search's
    casts. The weights cannot change within one search; the cache is emptied when it ends,
    so no cast outlives it. (Autocast caches casts of parameters that require grad, and its
    cache is one for the whole process: emptying it only costs an enclosing region, or another
    thread's, a cast again.)"""

    @functools.wraps(search)
    def wrapper(model: Transformer, src: Tensor, *args: Any, **kwargs: Any) -> list[Hypothesis]:
        kind = src.device.type
        if not torch.is_autocast_enabled(kind):
            return search(model, src, *args, **kwargs)
        with torch.autocast(kind, dtype=torch.get_autocast_dtype(kind), cache_enabled=True):
            try:
                return search(model, src, *args, **kwargs)
            finally:
                torch.clear_autocast_cache()

    return wrapper


def length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    return ((5.0 + length) / 6.0) ** alpha


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # normalised: log P / lp
    logprob: float


def source_lengths(src: Tensor, pad_id: int, eos_id: int) -> Tensor:
    """Real source tokens per sentence, not counting padding or the trailing EOS."""
    real = (src != pad_id) & (src != eos_id)
    return real.sum(dim=1)


@torch.no_grad()
def greedy_search(
    model: Transformer, src: Tensor, bos_id: int, eos_id: int, max_len_b: int = 50
) -> list[list[int]]:
    """Plain argmax decoding, written independently of beam search (it checks beam 1)."""
    pad_id = model.pad_id
    memory, mask = model.encode(src)
    b = src.size(0)
    max_len = source_lengths(src, pad_id, eos_id) + max_len_b
    ys = torch.full((b, 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    out: list[list[int]] = [[] for _ in range(b)]
    for t in range(int(max_len.max())):
        logits = model.project(model.decode(ys, memory, mask)[:, -1]).float()
        logits[:, pad_id] = float("-inf")
        logits[:, bos_id] = float("-inf")
        forced = (t + 1) >= max_len
        logits[forced] = float("-inf")
        logits[forced, eos_id] = 0.0
        nxt = logits.argmax(-1)
        for i in range(b):
            if not done[i]:
                if nxt[i].item() == eos_id:
                    done[i] = True
                else:
                    out[i].append(int(nxt[i]))
        if bool(done.all()):
            break
        ys = torch.cat([ys, nxt[:, None]], dim=1)
    return out


@cached_weight_casts
@torch.no_grad()
def beam_search(
    model: Transformer,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam: int = 4,
    alpha: float = 0.6,
    max_len_b: int = 50,
    use_cache: bool = True,
) -> list[Hypothesis]:
    """Best hypothesis per source sentence. ``src``: [B, S] ids with EOS, padded.

    Sentences that are done leave the batch (their rows of the encoder output, the caches and
    the beams are dropped), so late steps only compute the sentences still being decoded."""
    pad_id = model.pad_id
    device = src.device
    b, k = src.size(0), beam
    # One row per live hypothesis. The first step expands the single start hypothesis (BOS) of
    # each sentence, so it runs on one row per sentence and then grows to K: the encoder–
    # decoder keys/values are projected once per sentence, not once per beam.
    width = 1  # rows per sentence in this step
    memory, mask = model.encode(src)  # [n, S, d], [n, 1, 1, S] (without a cache: per row)
    max_len = source_lengths(src, pad_id, eos_id) + max_len_b  # [n*width]
    lp_max = length_penalty(max_len.float(), alpha)  # [n]
    sent = list(range(b))  # original index of each sentence still in the batch
    scores = torch.zeros(b, 1, device=device)  # [n, width]
    tokens = torch.full((b, 1), bos_id, dtype=torch.long, device=device)  # [n*width, t + 1]
    cache = model.new_cache() if use_cache else None
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    best_fin = [float("-inf")] * b

    def settle(done: Iterable[int]) -> None:
        """Sentences (batch positions) leaving without a finished hypothesis take their top
        live beam: unreachable with forced EOS, but a sentence never returns nothing."""
        for i in done:
            if not finished[sent[i]]:
                seq = tokens.view(len(sent), width, -1)[i, 0, 1:].tolist()
                s = float(scores[i, 0])
                finished[sent[i]].append(Hypothesis(seq, s / length_penalty(len(seq), alpha), s))

    for t in range(int(max_len.max())):
        n = len(sent)
        if cache is not None:
            hidden = model.decode(tokens[:, -1:], memory, mask, cache=cache, start=t)
        else:
            hidden = model.decode(tokens, memory, mask)
        lprobs = torch.log_softmax(model.project(hidden[:, -1]).float(), dim=-1)  # [n*w, V]
        lprobs[:, pad_id] = float("-inf")
        lprobs[:, bos_id] = float("-inf")
        forced = (t + 1) >= max_len
        if bool(forced.any()):
            eos_lp = lprobs[forced, eos_id]
            lprobs[forced] = float("-inf")
            lprobs[forced, eos_id] = eos_lp
        vocab = lprobs.size(-1)
        cand = (scores.view(-1, 1) + lprobs).view(n, width * vocab)
        if cand.size(1) < 2 * k:  # a toy vocabulary at the first step: -inf, never finished
            cand = F.pad(cand, (0, 2 * k - cand.size(1)), value=float("-inf"))
        top_scores, top_idx = cand.topk(2 * k, dim=1)  # [n, 2K]
        top_beam, top_tok = (top_idx // vocab).clamp_(max=width - 1), top_idx % vocab

        # Finalise EOS candidates that rank within the top K (as fairseq does).
        is_eos = (top_tok == eos_id) & torch.isfinite(top_scores)
        is_eos[:, k:] = False
        if bool(is_eos.any()):
            lp = length_penalty(t + 1, alpha)
            prev = tokens.view(n, width, -1)
            for i, j in is_eos.nonzero().tolist():
                if len(finished[sent[i]]) < k:
                    seq = prev[i, top_beam[i, j], 1:].tolist()
                    s = float(top_scores[i, j])
                    finished[sent[i]].append(Hypothesis(seq, s / lp, s))
                    best_fin[sent[i]] = max(best_fin[sent[i]], s / lp)

        # The K best non-EOS candidates continue.
        cont_scores = top_scores.masked_fill(top_tok == eos_id, float("-inf"))
        cont_scores, pick = cont_scores.topk(k, dim=1)
        beam_sel = top_beam.gather(1, pick)
        tok_sel = top_tok.gather(1, pick)

        # Early termination per sentence: K finished, or no live beam can beat the best one.
        n_done = torch.tensor([len(finished[i]) for i in sent], device=device)
        best = torch.tensor([best_fin[i] for i in sent], device=device)
        active = (n_done < k) & ~(best >= cont_scores.max(dim=1).values / lp_max)
        if not bool(active.any()):
            settle(range(n))
            break
        if bool(active.all()):
            keep = torch.arange(n, device=device)
        else:
            keep = active.nonzero().squeeze(1)
            settle((~active).nonzero().squeeze(1).tolist())
            beam_sel, tok_sel, cont_scores = beam_sel[keep], tok_sel[keep], cont_scores[keep]
            lp_max = lp_max[keep]
            sent = [sent[i] for i in keep.tolist()]
        # The next step's rows: K per kept sentence, each continuing one of this step's rows.
        order = (keep[:, None] * width + beam_sel).view(-1)
        left = keep.numel() != n  # some sentences left the batch
        if width != k or left:
            rows = (keep * width).repeat_interleave(k)  # any row of a sentence will do
            max_len = max_len[rows]
            if cache is None:  # the whole prefix is decoded again: one memory row per row
                memory, mask = memory[rows], mask[rows]
            elif left:  # with a cache they stay one row per sentence (_grouped_attention)
                memory, mask = memory[keep], mask[keep]
        tokens = torch.cat([tokens.index_select(0, order), tok_sel.view(-1, 1)], dim=1)
        scores = cont_scores
        width = k
        if cache is not None:
            # The encoder keys/values, like memory and mask, are kept per sentence.
            model.reorder_cache(cache, order, keep if left else None)
    else:
        settle(range(len(sent)))  # still live at the maximum length
    return [max(f, key=lambda h: h.score) for f in finished]
