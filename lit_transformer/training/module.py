"""The Transformer as a LightningModule: the paper's training recipe (§5) and evaluation.

Training: label-smoothed cross-entropy, Adam(0.9, 0.98, 1e-9), the warm-up/inverse-sqrt
schedule stepped per optimizer step. Validation: per-wordpiece perplexity (unsmoothed NLL) and
corpus BLEU (sacreBLEU) over hypotheses gathered from every rank (rule *corpus BLEU*,
ARCHITECTURE.md). Test: beam search with the run's ``decode`` settings and sacreBLEU. A plan
with ``paper_bleu`` also scores paper-style BLEU (:func:`lit_transformer.bleu.paper_bleu`) in
the target language of the run's config (``data.tgt_lang``).

What an evaluation does is an :class:`EvalPlan`, what it found an :class:`EvalResult`:
``module.score(trainer, datamodule, stage, plan)`` runs one and returns the other. Without a
plan (inside ``fit``) validation decodes with ``trainer.val_beam`` and test with ``decode``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from lit_transformer.bleu import corpus_bleu, paper_bleu
from lit_transformer.config import RunConfig
from lit_transformer.decoding.beam import DECODE_BATCH_TOKENS, beam_search
from lit_transformer.model.transformer import Transformer, count_parameters
from lit_transformer.training.loss import label_smoothed_loss, token_nll
from lit_transformer.training.schedule import noam_scheduler


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class EvalPlan:
    """One evaluation: decode with ``beam`` and length penalty ``alpha`` for BLEU (``bleu``;
    with ``paper_bleu`` paper-style BLEU too), and/or score the references teacher-forced for
    loss and perplexity (``nll``)."""

    beam: int
    alpha: float
    nll: bool = True
    bleu: bool = True
    paper_bleu: bool = False


@dataclass
class EvalResult:
    """What an evaluation of ``sentences`` pairs found. ``loss`` is the mean NLL per target
    wordpiece and ``ppl = exp(loss)``; ``loss_step`` is the training step of the weights they
    were measured on (a decode-only evaluation keeps the previous ones)."""

    sentences: int
    loss: float | None = None
    ppl: float | None = None
    loss_step: int | None = None
    bleu: float | None = None
    signature: str | None = None
    hypotheses: dict[int, str] | None = None  # detokenised, by sentence index
    bleu_paper: float | None = None  # paper-style BLEU, when the plan asked for it
    paper_signature: str | None = None


def build_adam(
    params: Iterable[torch.nn.Parameter],
    betas: Sequence[float] = (0.9, 0.98),
    eps: float = 1e-9,
    weight_decay: float = 0.0,
    lr: float = 1.0,
) -> torch.optim.Adam:
    """Adam, by default at lr 1 (the schedule's LambdaLR sets the rate), with the fused kernel
    (one pass over all parameters per step instead of a chain of multi-tensor ops) on CPU and
    CUDA."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(
        params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused
    )


class LitTransformer(L.LightningModule):
    def __init__(self, config: dict[str, Any], pad_id: int = 0, bos_id: int = 2, eos_id: int = 3):
        super().__init__()
        # Not to the loggers: the W&B run's config is built once, flat (training/loggers.py).
        self.save_hyperparameters(logger=False)
        self.cfg = RunConfig.from_dict(config)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.model = Transformer(self.cfg.model, pad_id=pad_id)
        self.tokenizer = None  # set by the CLI / datamodule for BLEU; also restored from ckpt
        self.tokenizer_proto: bytes | None = None
        self._val: dict[str, list] = {}
        self._tokens_since_log = 0
        self._t_last_log: float | None = None
        self.plan: EvalPlan | None = None  # set by score(); None: the defaults above
        self.results: dict[str, EvalResult] = {}  # the latest, by prefix ("val", "test")

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.model(src, tgt_in)

    # -- training ----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["src"], batch["tgt_in"])
        loss = label_smoothed_loss(
            logits, batch["tgt_out"], self.cfg.model.label_smoothing, self.pad_id
        )
        if self.cfg.trainer.inject_nan_at_step is not None:
            if self.global_step >= self.cfg.trainer.inject_nan_at_step:
                loss = loss * float("nan")
        n_src, n_tgt = int(batch["n_src_tokens"]), int(batch["n_tgt_tokens"])
        padded = batch["src"].numel() + batch["tgt_out"].numel()
        self._tokens_since_log += n_tgt
        bs = batch["src"].size(0)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        # The rate this batch's optimizer step uses (logged before the scheduler advances).
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        self.log("train/padding_fraction", 1.0 - (n_src + n_tgt) / padded, batch_size=bs)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        every = max(1, self.trainer.log_every_n_steps)
        now = time.perf_counter()
        if self._t_last_log is None:
            self._t_last_log, self._tokens_since_log = now, 0
            return
        if step % every == 0 and now > self._t_last_log:
            rate = self._tokens_since_log / (now - self._t_last_log)
            self.log("train/tgt_tokens_per_s", rate * self.trainer.world_size, prog_bar=True)
            self._t_last_log, self._tokens_since_log = now, 0
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if step % every == 0 and loss is not None and not torch.isfinite(loss.detach()):
            raise DivergenceError(f"training loss became {loss.item()} at step {step}")

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.cfg.optim
        optimizer = build_adam(self.model.parameters(), o.betas, o.eps, o.weight_decay)
        scheduler = noam_scheduler(optimizer, self.cfg.model.d_model, o.warmup_steps, o.lr_scale)
        # Step per optimizer step (not per batch or epoch): right under gradient accumulation.
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # -- evaluation --------------------------------------------------------------------------
    def score(self, trainer: L.Trainer, datamodule: Any, stage: str, plan: EvalPlan) -> EvalResult:
        """Run ``trainer.validate`` (stage "validate") or ``trainer.test`` under ``plan``."""
        self.plan = plan
        try:
            if stage == "validate":
                trainer.validate(self, datamodule=datamodule, verbose=False)
                return self.results["val"]
            trainer.test(self, datamodule=datamodule, verbose=False)
            return self.results["test"]
        finally:
            self.plan = None

    def _eval_step(self, batch: dict[str, Any], plan: EvalPlan) -> None:
        self._val["index"].append(batch["index"].cpu())
        if plan.nll:
            logits = self.model(batch["src"], batch["tgt_in"])
            nll = token_nll(logits, batch["tgt_out"], self.pad_id)
            self._val["nll"].append(nll.sum(1).double().cpu())
            self._val["ntok"].append((batch["tgt_out"] != self.pad_id).sum(1).cpu())
        if plan.bleu and self.tokenizer is not None:
            # Sources wait until there are DECODE_BATCH_TOKENS of them: see _decode_pending.
            self._val["pending"].append(batch["src"])
            self._val["decode"] = (plan.beam, plan.alpha)
            self._val["paper_bleu"] = plan.paper_bleu
            if sum(src.numel() for src in self._val["pending"]) >= DECODE_BATCH_TOKENS:
                self._decode_pending()

    def _decode_pending(self) -> None:
        """Beam-search the waiting sources as one batch (padded to the widest).

        The evaluation batches fit the training token budget (~100 sentences at 2,048 tokens)
        and a batch decodes until its slowest sentence is done: a few sentences that run to the
        length limit keep a nearly empty batch going for tens of steps, at a fixed cost per
        step. Decoding several consecutive (similar-length) batches together shares that tail."""
        pending = self._val.get("pending")
        if not pending:
            return
        width = max(src.size(1) for src in pending)
        src = torch.cat([F.pad(s, (0, width - s.size(1)), value=self.pad_id) for s in pending])
        beam, alpha = self._val["decode"]
        hyps = beam_search(self.model, src, self.bos_id, self.eos_id, beam=beam, alpha=alpha)
        self._val["hyps"].extend(h.tokens for h in hyps)
        pending.clear()

    def _eval_start(self) -> None:
        self._val = {"index": [], "nll": [], "ntok": [], "hyps": [], "pending": []}

    def _eval_end(self, prefix: str, refs: list[str] | None) -> EvalResult:
        if self._val.get("pending"):
            # Epoch-end hooks run outside the step's autocast: decode as the steps would.
            with self.trainer.precision_plugin.forward_context():
                self._decode_pending()
        index = torch.cat(self._val["index"]).tolist() if self._val["index"] else []
        nll = torch.cat(self._val["nll"]).tolist() if self._val["nll"] else [0.0] * len(index)
        ntok = torch.cat(self._val["ntok"]).tolist() if self._val["ntok"] else [0] * len(index)
        hyps = self._val["hyps"]
        local = list(zip(index, nll, ntok, hyps if hyps else [None] * len(index), strict=True))
        # Every rank evaluated a shard (padded with duplicate batches): gather, dedupe by index.
        if dist.is_available() and dist.is_initialized() and self.trainer.world_size > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
            local = [item for part in gathered for item in part]
        by_index = {i: (n, t, h) for i, n, t, h in local}
        total_nll = sum(v[0] for v in by_index.values())
        total_tok = sum(v[1] for v in by_index.values())
        result = EvalResult(sentences=len(by_index))
        metrics: dict[str, float] = {}
        if total_tok:
            result.loss = total_nll / total_tok
            result.ppl = math.exp(min(result.loss, 50.0))
            result.loss_step = self.global_step
            metrics.update({f"{prefix}/loss": result.loss, f"{prefix}/ppl": result.ppl})
        elif prefix in self.results:  # decode only: the loss of these weights is known
            last = self.results[prefix]
            result = replace(result, loss=last.loss, ppl=last.ppl, loss_step=last.loss_step)
        if hyps and refs is not None and self.tokenizer is not None:
            order = sorted(by_index)
            detok = self.tokenizer.decode([by_index[i][2] for i in order])
            score = corpus_bleu(detok, [refs[i] for i in order])
            result.bleu, result.signature = score.score, score.signature
            result.hypotheses = dict(zip(order, detok, strict=True))
            metrics[f"{prefix}/bleu"] = score.score
            if self._val.get("paper_bleu"):
                paper = paper_bleu(detok, [refs[i] for i in order], self.cfg.data.tgt_lang)
                result.bleu_paper, result.paper_signature = paper.score, paper.signature
                metrics[f"{prefix}/bleu_paper"] = paper.score
        metrics[f"{prefix}/sentences"] = float(len(by_index))
        for key, value in metrics.items():
            self.log(key, value, sync_dist=False, rank_zero_only=False)
        self.results[prefix] = result
        self._val = {}
        return result

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.plan is not None:
            self._eval_step(batch, self.plan)
            return
        tr = self.cfg.trainer
        # Lightning validates once more when training stops early (time budget, pruning); the
        # run's final evaluation decodes the dev set right after, so this one skips decoding.
        stopping = self.trainer.state.fn == "fit" and self.trainer.should_stop
        bleu = tr.val_bleu and not stopping
        self._eval_step(batch, EvalPlan(tr.val_beam, self.cfg.decode.alpha, bleu=bleu))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._val = {}
            return
        dm = self.trainer.datamodule
        result = self._eval_end("val", getattr(dm, "dev_refs", None))
        if result.ppl is not None:
            msg = f"step {self.global_step}: dev ppl {result.ppl:.2f}"
            if result.bleu is not None:
                msg += f", dev BLEU {result.bleu:.2f}"
            rank_zero_info(msg)

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        d = self.cfg.decode
        self._eval_step(batch, self.plan or EvalPlan(d.beam, d.alpha))

    def on_test_epoch_end(self) -> None:
        dm = self.trainer.datamodule
        self._eval_end("test", getattr(dm, "test_refs", None))

    # -- checkpoints carry the tokenizer, so `translate --ckpt` needs nothing else -------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.tokenizer_proto is not None:
            checkpoint["tokenizer_proto"] = self.tokenizer_proto

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokenizer_proto = checkpoint.get("tokenizer_proto")
