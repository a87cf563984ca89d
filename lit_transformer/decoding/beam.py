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

from lit_transformer.config import DECODE
from lit_transformer.model.cache import hypothesis_rows
from lit_transformer.model.transformer import Transformer

# Source tokens (padding included) per beam-search call. A batch decodes until its slowest
# sentence is done, at a fixed cost per step however few sentences are left; larger batches
# share those tails, while one call of the whole dev set copies ever larger caches: a few
# training batches per call was fastest (BENCHMARKS.md, "Session 4: … larger decoding
# batches").
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
    """lp(Y) = ((5 + |Y|) / 6)^α (GNMT), |Y| the generated tokens, EOS included."""
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
    model: Transformer, src: Tensor, bos_id: int, eos_id: int, max_len_b: int = DECODE.max_len_b
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


@dataclass
class _Candidates:
    """A step's choice: per sentence, the 2K best one-token extensions of its hypotheses,
    best first ([n, 2K] each)."""

    scores: Tensor  # log P(y_1 … y_t | X) of the extended hypothesis
    beams: Tensor  # which of the sentence's hypotheses it extends (0 … width − 1)
    tokens: Tensor  # the token it appends


@dataclass
class _Live:
    """The hypotheses still being extended: ``width`` per sentence, sentence-major (row
    i·width + j is hypothesis j of the i-th sentence in ``sent``)."""

    sent: list[int]  # the original batch index of each sentence still being decoded
    tokens: Tensor  # [n·width, t + 1], BOS first
    scores: Tensor  # [n, width], log P of each hypothesis
    max_len: Tensor  # [n·width], the length limit of its sentence (EOS included)
    lp_max: Tensor  # [n], lp(max_len): no hypothesis of the sentence is divided by more
    width: int

    def hypothesis(self, i: int, j: int) -> list[int]:
        """Tokens of hypothesis j of the i-th live sentence, without BOS."""
        return self.tokens.view(len(self.sent), self.width, -1)[i, j, 1:].tolist()


class _Finished:
    """Finished hypotheses per sentence (original batch index) and the best score of each."""

    def __init__(self, sentences: int, alpha: float) -> None:
        self.alpha = alpha
        self.hyps: list[list[Hypothesis]] = [[] for _ in range(sentences)]
        self.best = [float("-inf")] * sentences

    def add(self, sentence: int, tokens: list[int], logprob: float, length: int) -> None:
        """A hypothesis of ``length`` tokens (EOS included when it ended with one), scored
        log P / lp(length)."""
        score = logprob / length_penalty(length, self.alpha)
        self.hyps[sentence].append(Hypothesis(tokens, score, logprob))
        self.best[sentence] = max(self.best[sentence], score)

    def settle(self, live: _Live, rows: Iterable[int]) -> None:
        """Live sentences (positions in ``live.sent``) leaving without a finished hypothesis
        take their top live beam: unreachable with forced EOS, but a sentence never returns
        nothing."""
        for i in rows:
            if not self.hyps[live.sent[i]]:
                seq = live.hypothesis(i, 0)
                self.add(live.sent[i], seq, float(live.scores[i, 0]), len(seq))

    def results(self) -> list[Hypothesis]:
        return [max(f, key=lambda h: h.score) for f in self.hyps]


def _next_token_logprobs(
    logits: Tensor, max_len: Tensor, t: int, pad_id: int, bos_id: int, eos_id: int
) -> Tensor:
    """log P(y_{t+1} | y_≤t, X) per row, [rows, V], with PAD and BOS never generated and, for
    rows at their length limit, EOS the only choice (with its own log-probability)."""
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    lprobs[:, pad_id] = float("-inf")
    lprobs[:, bos_id] = float("-inf")
    forced = (t + 1) >= max_len
    if bool(forced.any()):
        eos_lp = lprobs[forced, eos_id]
        lprobs[forced] = float("-inf")
        lprobs[forced, eos_id] = eos_lp
    return lprobs


def _top_candidates(live: _Live, lprobs: Tensor, k: int) -> _Candidates:
    """Choose the step's candidates: the 2K best of score(hyp) + log P(token | hyp) over every
    hypothesis of a sentence and every token. 2K so that K remain when up to K of them end in
    EOS."""
    n, vocab = len(live.sent), lprobs.size(-1)
    cand = (live.scores.view(-1, 1) + lprobs).view(n, live.width * vocab)
    if cand.size(1) < 2 * k:  # a toy vocabulary at the first step: -inf, never finished
        cand = F.pad(cand, (0, 2 * k - cand.size(1)), value=float("-inf"))
    scores, idx = cand.topk(2 * k, dim=1)
    return _Candidates(scores, (idx // vocab).clamp_(max=live.width - 1), idx % vocab)


def _finish_eos(
    cand: _Candidates, live: _Live, finished: _Finished, t: int, eos_id: int, k: int
) -> None:
    """Finish the hypotheses whose EOS candidate ranks within the top K of its sentence (as
    fairseq does), while the sentence has fewer than K: score = log P / lp(t + 1), the EOS
    counted in the length."""
    is_eos = (cand.tokens == eos_id) & torch.isfinite(cand.scores)
    is_eos[:, k:] = False
    if not bool(is_eos.any()):
        return
    for i, j in is_eos.nonzero().tolist():
        if len(finished.hyps[live.sent[i]]) < k:
            seq = live.hypothesis(i, int(cand.beams[i, j]))
            finished.add(live.sent[i], seq, float(cand.scores[i, j]), t + 1)


def _continuations(cand: _Candidates, eos_id: int, k: int) -> _Candidates:
    """The K best candidates that do not end in EOS: the next step's hypotheses ([n, K])."""
    scores = cand.scores.masked_fill(cand.tokens == eos_id, float("-inf"))
    scores, pick = scores.topk(k, dim=1)
    return _Candidates(scores, cand.beams.gather(1, pick), cand.tokens.gather(1, pick))


def _still_open(live: _Live, nxt: _Candidates, finished: _Finished, k: int) -> Tensor:
    """[n] bool: the sentences to go on with. A sentence stops with K finished hypotheses, or
    when its best finished score is at least max(live log P) / lp(max_len): a live score can
    only fall and lp grows with the length, so no live hypothesis can still beat it."""
    device = nxt.scores.device
    n_done = torch.tensor([len(finished.hyps[i]) for i in live.sent], device=device)
    best = torch.tensor([finished.best[i] for i in live.sent], device=device)
    return (n_done < k) & ~(best >= nxt.scores.max(dim=1).values / live.lp_max)


def _advance(live: _Live, nxt: _Candidates, keep: Tensor | None) -> Tensor:
    """Reorder ``live`` to the next step's hypotheses ``nxt``, [n', K], those of the sentences
    at positions ``keep`` (None: all of them). Returns, per new row, the row it continues."""
    rows = hypothesis_rows(nxt.beams, keep, live.width)
    if keep is not None:
        live.lp_max = live.lp_max[keep]
        live.sent = [live.sent[i] for i in keep.tolist()]
    if live.width != nxt.beams.size(1) or keep is not None:
        live.max_len = live.max_len[rows]  # per sentence, so any of its old rows has it
    live.tokens = torch.cat([live.tokens.index_select(0, rows), nxt.tokens.view(-1, 1)], dim=1)
    live.scores, live.width = nxt.scores, nxt.beams.size(1)
    return rows


@cached_weight_casts
@torch.no_grad()
def beam_search(
    model: Transformer,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam: int = DECODE.beam,
    alpha: float = DECODE.alpha,
    max_len_b: int = DECODE.max_len_b,
    use_cache: bool = True,
) -> list[Hypothesis]:
    """Best hypothesis per source sentence. ``src``: [B, S] ids with EOS, padded.

    Each step scores every one-token extension of the live hypotheses, keeps the 2K best per
    sentence (:func:`_top_candidates`), finishes those ending in EOS (:func:`_finish_eos`),
    continues with the K best others (:func:`_continuations`) and reorders the hypotheses and
    the decoder cache to them (:func:`_advance`, :meth:`DecoderCache.reorder`).

    Sentences that are done leave the batch (their rows of the encoder output, the caches and
    the beams are dropped), so late steps only compute the sentences still being decoded. The
    first step expands the single start hypothesis (BOS) of each sentence, so it runs on one
    row per sentence and then grows to K: the encoder–decoder keys/values are projected once
    per sentence, not once per beam."""
    k = beam
    b = src.size(0)
    memory, mask = model.encode(src)  # [n, S, d], [n, 1, 1, S]
    max_len = source_lengths(src, model.pad_id, eos_id) + max_len_b  # [n]
    live = _Live(
        sent=list(range(b)),
        tokens=torch.full((b, 1), bos_id, dtype=torch.long, device=src.device),
        scores=torch.zeros(b, 1, device=src.device),
        max_len=max_len,
        lp_max=length_penalty(max_len.float(), alpha),
        width=1,
    )
    finished = _Finished(b, alpha)
    cache = model.new_cache() if use_cache else None

    for t in range(int(max_len.max())):
        if cache is not None:
            hidden = model.decode(live.tokens[:, -1:], memory, mask, cache=cache, start=t)
        else:
            hidden = model.decode(live.tokens, memory, mask)
        logits = model.project(hidden[:, -1])
        lprobs = _next_token_logprobs(logits, live.max_len, t, model.pad_id, bos_id, eos_id)

        cand = _top_candidates(live, lprobs, k)
        _finish_eos(cand, live, finished, t, eos_id, k)
        nxt = _continuations(cand, eos_id, k)

        active = _still_open(live, nxt, finished, k)
        if not bool(active.any()):
            finished.settle(live, range(len(live.sent)))
            break
        keep = None  # positions of the sentences that go on; None: all of them
        if not bool(active.all()):
            keep = active.nonzero().squeeze(1)
            finished.settle(live, (~active).nonzero().squeeze(1).tolist())
            nxt = _Candidates(nxt.scores[keep], nxt.beams[keep], nxt.tokens[keep])

        grows = live.width != k
        rows = _advance(live, nxt, keep)
        if cache is not None:
            # The cache keeps the encoder keys/values one row per sentence: so do memory, mask.
            cache.reorder(nxt.beams, keep)
            if keep is not None:
                memory, mask = memory[keep], mask[keep]
        elif grows or keep is not None:
            # The whole prefix is decoded again at each step: one memory row per hypothesis.
            memory, mask = memory[rows], mask[rows]
    else:
        finished.settle(live, range(len(live.sent)))  # still live at the maximum length
    return finished.results()
