"""Score a saved checkpoint on a corpus split: per-wordpiece perplexity and sacreBLEU, as the
run's own final evaluation computes them (``validate`` and ``test``), and on request
paper-style BLEU beside them."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L

from lit_transformer.config import DECODE
from lit_transformer.data.corpora import is_tsv, parse_named
from lit_transformer.data.datamodule import TranslationDataModule
from lit_transformer.decoding.translate import load_module
from lit_transformer.training.module import EvalPlan
from lit_transformer.training.run import build_datamodule


def checkpoint_datamodule(
    module,
    stage: str,
    data_root: str | None = None,
    corpus: str | None = None,
    split: str | None = None,
) -> TranslationDataModule:
    """The checkpoint's corpus (or ``corpus``), set up for ``stage`` and encoded with the model's
    own vocabulary (stored in the checkpoint), whatever the corpus: a tokenizer retrained on
    the corpus could differ from it."""
    cfg = module.cfg
    if data_root:
        cfg.data.data_root = data_root
    if corpus:
        cfg.data.corpus = corpus
    if split and ("/" in split or is_tsv(split)):
        # A path: score those files (a prefix or TSV) as a test set named after them.
        cfg.data.tests = {**parse_named(cfg.data.tests), "files": split}
        split = "files"
    dm = build_datamodule(cfg, seed=0)
    if split:
        dm.hparams["dev_split" if stage == "validate" else "test_split"] = split
    dm.tokenizer = module.tokenizer
    dm.setup(stage)
    return dm


def scoring_trainer(precision: str) -> L.Trainer:
    """One device, no logging: a Trainer that only validates or tests."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # see run_fit
    return L.Trainer(
        accelerator="auto",
        devices=1,
        precision=precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )


def evaluate_checkpoint(
    ckpt: str | Path,
    stage: str = "test",
    data_root: str | None = None,
    beam: int = DECODE.beam,
    alpha: float = DECODE.alpha,
    corpus: str | None = None,
    split: str | None = None,
    precision: str | None = None,
    paper_bleu: bool = False,
) -> dict[str, Any]:
    """Scores as the trial's own final evaluation computes them: by default in the precision
    the model was trained in. With ``paper_bleu`` the metrics add paper-style BLEU
    (``bleu_paper``, ``bleu_paper_signature``), tokenised for the checkpoint's target language
    (its ``data.tgt_lang``, whatever ``corpus``); the sacreBLEU keys stay as they are."""
    import torch

    from lit_transformer.precision import decode_precision as choose

    module = load_module(ckpt)
    # The scoring Trainer moves the model to the GPU where there is one: decide for that device.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = choose(module.cfg.trainer.precision, precision, device)
    dm = checkpoint_datamodule(module, stage, data_root, corpus, split)
    plan = EvalPlan(beam, alpha, paper_bleu=paper_bleu)
    scores = module.score(scoring_trainer(precision), dm, stage, plan)
    metrics: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "stage": stage,
        "beam": beam,
        "alpha": alpha,
        "precision": precision,
        "ppl": scores.ppl,
        "bleu": scores.bleu,
        "sentences": float(scores.sentences),
        "signature": scores.signature,
    }
    if paper_bleu:
        metrics |= {"bleu_paper": scores.bleu_paper, "bleu_paper_signature": scores.paper_signature}
    return metrics
