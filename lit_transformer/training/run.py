"""One training run end to end: data, model, Trainer, final evaluation, ``result.json``.

This is the contract a sweep trial uses: given a frozen configuration, a seed and an output
directory, train, evaluate (dev perplexity and BLEU with beam search, test BLEU) and write
``DIR/result.json``. Under DDP every rank runs this function; only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_transformer.config import RunConfig
from lit_transformer.data.datamodule import TranslationDataModule
from lit_transformer.precision import resolve as resolve_precision
from lit_transformer.provenance import git_commit, is_rank_zero, write_json_atomic
from lit_transformer.training.average import average_checkpoints, find_checkpoints, save_atomic
from lit_transformer.training.budget import TrainingTimeBudget
from lit_transformer.training.curve import dev_curve
from lit_transformer.training.loggers import (
    build_loggers,
    define_metrics,
    finish_wandb,
    join_metrics,
    run_config,
    set_aside_metrics,
)
from lit_transformer.training.module import EvalPlan, LitTransformer
from lit_transformer.training.progress import ProgressLine
from lit_transformer.training.resume import checkpoint_step, resumable_checkpoint


@dataclass
class RunSpec:
    """One run: its configuration (decoding of the final evaluation in ``config.decode``), seed
    and output directory, and what it is part of (row, ablation, W&B group)."""

    config: RunConfig
    out_dir: Path
    seed: int = 0
    row: str | None = None
    ablation: str | None = None
    group: str | None = None
    test: bool = True
    resume: bool = True  # continue from DIR/checkpoints' newest readable checkpoint, if any
    callbacks: tuple = ()  # extra Lightning callbacks (e.g. a sweep's pruning reporter)
    job_type: str = "train"
    protocol: str | None = None  # a sweep trial's: "equal steps" or "equal training time"


def param_checksum(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_param_checksums(module: torch.nn.Module) -> list[str]:
    """Each rank's parameter hash; under DDP all ranks must hold identical weights."""
    local = param_checksum(module)
    if dist.is_available() and dist.is_initialized():
        out: list = [None] * dist.get_world_size()
        dist.all_gather_object(out, local)
        return out
    return [local]


def build_datamodule(cfg: RunConfig, seed: int) -> TranslationDataModule:
    d = cfg.data
    return TranslationDataModule(
        corpus=d.corpus,
        data_root=d.data_root,
        src_lang=d.src_lang,
        tgt_lang=d.tgt_lang,
        vocab_size=d.vocab_size,
        max_tokens=d.max_tokens,
        seed=seed,
        cache_dir=d.cache_dir,
        num_workers=d.num_workers,
        max_len=d.max_len,
        max_eval_sentences=d.max_eval_sentences,
        train=d.train,
        dev=d.dev,
        test=d.test,
        tests=d.tests,
        clean_empty=d.clean_empty,
        clean_max_words=d.clean_max_words,
        clean_ratio=d.clean_ratio,
        tokenizer_sentences=d.tokenizer_sentences,
    )


def build_module(cfg: RunConfig, dm: TranslationDataModule) -> LitTransformer:
    cfg.model.vocab_size = dm.tokenizer.vocab_size
    tok = dm.tokenizer
    module = LitTransformer(cfg.to_dict(), pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id)
    module.tokenizer = tok
    module.tokenizer_proto = Path(tok.model_path).read_bytes()
    return module


def build_trainer(spec: RunSpec, loggers: list | bool, callbacks: list) -> L.Trainer:
    tr = spec.config.trainer
    val_every = tr.val_check_interval
    kwargs: dict[str, Any] = {}
    if isinstance(val_every, int) and val_every > 1:
        # Step-based validation across epoch boundaries.
        kwargs.update(val_check_interval=val_every, check_val_every_n_epoch=None)
    elif val_every is not None:
        kwargs.update(
            val_check_interval=val_every, check_val_every_n_epoch=tr.check_val_every_n_epoch
        )
    else:
        kwargs.update(check_val_every_n_epoch=tr.check_val_every_n_epoch)
    max_time = None
    if tr.max_minutes and tr.budget_counts_validation:
        max_time = {"minutes": tr.max_minutes}
    elif tr.max_minutes:
        callbacks = [*callbacks, TrainingTimeBudget(tr.max_minutes)]
    if not sys.stderr.isatty() and (tr.progress_every_s or tr.progress_every_n_steps):
        callbacks = [
            *callbacks,
            ProgressLine(
                tr.progress_every_s, tr.progress_every_n_steps, tr.max_steps, tr.max_minutes
            ),
        ]
    accelerator = tr.accelerator
    strategy = tr.strategy
    if tr.devices * tr.num_nodes > 1 and strategy == "auto":
        strategy = "ddp"
    return L.Trainer(
        accelerator=accelerator,
        devices=tr.devices,
        num_nodes=tr.num_nodes,
        strategy=strategy,
        precision=resolve_precision(tr.precision, tr.accelerator)[0],  # as is, unless auto
        max_steps=tr.max_steps,
        max_epochs=tr.max_epochs if tr.max_epochs is not None else -1,
        max_time=max_time,
        accumulate_grad_batches=tr.accumulate_grad_batches,
        gradient_clip_val=spec.config.optim.clip_grad_norm,
        log_every_n_steps=tr.log_every_n_steps,
        logger=loggers,
        callbacks=callbacks,
        use_distributed_sampler=False,  # the token-budget sampler shards by rank itself
        num_sanity_val_steps=0,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        deterministic=tr.deterministic,
        default_root_dir=str(spec.out_dir),
        **kwargs,
    )


def resolve_run_precision(cfg: RunConfig) -> str:
    """Turn ``trainer.precision: auto`` into the precision that runs (printed once, then
    recorded in the checkpoint's hyper-parameters, ``result.json`` and the W&B config)."""
    from lit_transformer import precision as prec
    from lit_transformer.model.cpu_kernels import choices

    choices()  # a bad LIT_TRANSFORMER_CPU_KERNELS fails here, as one line, before any set-up
    tr = cfg.trainer
    auto = tr.precision == prec.AUTO
    tr.precision, why = prec.resolve(tr.precision, tr.accelerator)
    if auto:
        prec.share_with_children(tr.accelerator)  # DDP ranks re-launched from here agree
    if is_rank_zero():
        print(f"precision: {tr.precision} ({why})", file=sys.stderr, flush=True)
    return tr.precision


def checkpointing(tr: Any, ckpt_dir: Path) -> ModelCheckpoint:
    """Periodic checkpoints (for averaging), with ``last.ckpt`` (what a retried trial resumes
    from) refreshed at each; without periodic ones, at each validation and epoch end.

    Periodic means every ``checkpoint_every_minutes`` of wall time (the paper's 10-minute
    interval; Lightning's ``train_time_interval``, decided on rank 0 for all ranks), else every
    ``checkpoint_every_n_steps``, else at each step-based validation."""
    minutes = tr.checkpoint_every_minutes
    every = tr.checkpoint_every_n_steps or (
        tr.val_check_interval if isinstance(tr.val_check_interval, int) else None
    )
    if minutes:
        trigger: dict[str, Any] = {"train_time_interval": timedelta(minutes=minutes)}
    elif every:
        trigger = {"every_n_train_steps": every}
    else:
        return ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0)
    return ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        **trigger,
        save_top_k=max(tr.keep_checkpoints, tr.average_last, 1),
        monitor="step",
        mode="max",
        save_last=True,
    )


def resume_point(ckpt_dir: Path) -> str | None:
    """The newest checkpoint that loads (``checkpoints/``, or a SLURM requeue's ``hpc_ckpt_N``
    beside it), saying on rank 0 which ones it skipped."""
    found, skipped = resumable_checkpoint(ckpt_dir, sorted(ckpt_dir.parent.glob("hpc_ckpt_*.ckpt")))
    if skipped and is_rank_zero():
        for line in skipped:
            print(f"warning: {line}", file=sys.stderr, flush=True)
        print(
            f"resuming from {found}" if found else "no readable checkpoint: starting fresh",
            file=sys.stderr,
            flush=True,
        )
    return str(found) if found else None


def final_evaluation(
    spec: RunSpec, trainer: L.Trainer, module: LitTransformer, dm: TranslationDataModule
) -> dict[str, Any]:
    """Dev perplexity and BLEU of the final weights with the paper's decoder (``decode``),
    the dev hypotheses (``dev.hyp``, for paired significance tests between rows) and test
    BLEU; with ``decode.paper_bleu`` paper-style BLEU beside each (``dev_bleu_paper``,
    ``test_bleu_paper``, ``bleu_paper_signature``); the final checkpoint ``model.ckpt``."""
    out, d = spec.out_dir, spec.config.decode
    # When training ended with a validation of these very weights (one at the last step, or
    # the one Lightning adds at a time-budget or pruning stop), keep its dev loss: decode only.
    last = module.results.get("val")
    known = last is not None and last.loss_step == trainer.global_step
    plan = EvalPlan(d.beam, d.alpha, nll=not known, paper_bleu=d.paper_bleu)
    dev = module.score(trainer, dm, "validate", plan)
    result: dict[str, Any] = {
        "dev_ppl": dev.ppl,
        "dev_loss": dev.loss,
        "dev_bleu": dev.bleu,
        "bleu_signature": dev.signature,
    }
    if d.paper_bleu:
        result.update(dev_bleu_paper=dev.bleu_paper, bleu_paper_signature=dev.paper_signature)
    if trainer.is_global_zero and dev.hypotheses:
        text = "".join(dev.hypotheses.get(i, "") + "\n" for i in range(len(dm.dev_refs)))
        (out / "dev.hyp").write_text(text, encoding="utf-8")
        result["dev_hypotheses"] = str((out / "dev.hyp").resolve())
    if spec.test and getattr(dm, "test_refs", None):
        test = module.score(trainer, dm, "test", EvalPlan(d.beam, d.alpha, paper_bleu=d.paper_bleu))
        result.update(test_bleu=test.bleu, test_ppl=test.ppl)
        if d.paper_bleu:
            result["test_bleu_paper"] = test.bleu_paper
    final_ckpt = out / "model.ckpt"
    trainer.save_checkpoint(final_ckpt)
    result["checkpoint"] = str(final_ckpt.resolve())
    return result


def average_and_score(
    spec: RunSpec, trainer: L.Trainer, module: LitTransformer, dm: TranslationDataModule
) -> dict[str, Any]:
    """Average the last ``trainer.average_last`` checkpoints (as the paper does) and score the
    average on the test set."""
    tr, d = spec.config.trainer, spec.config.decode
    paths = find_checkpoints(spec.out_dir / "checkpoints")[-tr.average_last :]
    if len(paths) < 2:
        return {}
    averaged = average_checkpoints(paths)
    avg_path = spec.out_dir / "averaged.ckpt"
    if trainer.is_global_zero:
        save_atomic(averaged, avg_path)
    module.load_state_dict(averaged["state_dict"])
    result: dict[str, Any] = {
        "averaged_checkpoints": len(paths),
        "averaged_checkpoint": str(avg_path.resolve()),
    }
    if spec.test and getattr(dm, "test_refs", None):
        test = module.score(trainer, dm, "test", EvalPlan(d.beam, d.alpha, paper_bleu=d.paper_bleu))
        result["test_bleu_averaged"] = test.bleu
        if d.paper_bleu:
            result["test_bleu_averaged_paper"] = test.bleu_paper
    return result


def run_fit(spec: RunSpec) -> dict[str, Any]:
    """Train ``spec``, evaluate it and write ``DIR/result.json`` (rank 0); returns the result.

    Phases: set-up (seed, precision, data, model, loggers, Trainer), ``trainer.fit`` (resumed
    from the newest readable checkpoint), the final evaluation, checkpoint averaging."""
    t0 = time.time()
    cfg, out = spec.config, spec.out_dir
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(spec.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    # The token-budget sampler does the batching work; DataLoader workers would not help.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # The train loader resumes mid-epoch where the checkpoint left it (sampler.resume_at),
    # though it is not Lightning's "stateful" kind.
    warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")
    resolve_run_precision(cfg)

    dm = build_datamodule(cfg, spec.seed)
    dm.prepare_data()
    dm.setup("fit")
    if dm.clean_rules.active and is_rank_zero():
        print(dm.clean_counts.summary(dm.clean_rules), file=sys.stderr, flush=True)
    module = build_module(cfg, dm)
    if cfg.trainer.compile:
        module.model.compile()  # in place: parameter names (and checkpoints) stay the same
    ckpt_dir = out / "checkpoints"
    meta = {
        "row": spec.row,
        "ablation": spec.ablation,
        "seed": spec.seed,
        "git_commit": git_commit(),
        "data_hash": dm.data_hash,
        "tokenizer_hash": dm.tokenizer.sha256,
        "precision": cfg.trainer.precision,  # as resolved: what ran
        "train_pairs": dm.clean_counts.to_dict(),  # read, kept, removed by each cleaning rule
    }
    run_name = f"{spec.row}/seed{spec.seed}" if spec.row else f"seed{spec.seed}"
    tr = cfg.trainer
    resumed_from = resume_point(ckpt_dir) if spec.resume else None
    if resumed_from and is_rank_zero():  # before the CSV logger deletes metrics.csv
        set_aside_metrics(out / "csv", checkpoint_step(Path(resumed_from)))
    table_group = row_group(spec)
    wandb_meta = {
        **meta,
        "study": spec.group or tr.wandb_group,
        "group": table_group,
        "protocol": spec.protocol,
        "params": module.num_parameters,
    }
    loggers = build_loggers(
        out,
        tr.wandb,
        tr.wandb_project,
        run_name,
        spec.group or tr.wandb_group,
        run_config(cfg.to_dict(), wandb_meta),
        job_type=spec.job_type,
        tags=[table_group] if table_group else None,
    )
    if is_rank_zero():
        define_metrics(loggers)
    trainer = build_trainer(spec, loggers, [checkpointing(tr, ckpt_dir), *spec.callbacks])

    t_fit = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=resumed_from)
    t_eval = time.time()
    result: dict[str, Any] = {
        **meta,
        "params": module.num_parameters,
        "rank_param_checksums": gather_param_checksums(module),
        "steps": trainer.global_step,
        "epochs": trainer.current_epoch,
        "resumed_from": resumed_from,
        "status": "pruned" if getattr(trainer, "pruned", False) else "complete",
        "train_wall_s": round(t_eval - t0, 1),
        "config": cfg.to_dict(),
        "beam": cfg.decode.beam,
        "alpha": cfg.decode.alpha,
    }
    result.update(final_evaluation(spec, trainer, module, dm))
    if tr.average_last:
        result.update(average_and_score(spec, trainer, module, dm))
    result["wall_s"] = round(time.time() - t0, 1)
    # Where a trial's time goes: the fixed part (set-up: data, tokenizer, model, loggers; the
    # final evaluation and saving) against training (which includes periodic validation).
    result["timings_s"] = {
        "setup": round(t_fit - t0, 1),
        "fit": round(t_eval - t_fit, 1),
        "final": round(time.time() - t_eval, 1),
    }
    if trainer.is_global_zero:
        # Last, once the CSV logger has written its final rows (the final evaluation logs too):
        # joined while it is still writing, its next rows would not fit the joined header.
        for lg in loggers:
            lg.save()
        join_metrics(out / "csv")
        result["dev_curve"] = dev_curve(out / "csv")
        write_json_atomic(result, out / "result.json")
        finish_wandb(loggers, result)
    return result


def row_group(spec: RunSpec) -> str | None:
    """The row's Table 3 group (A–E, base, big) from its ablation file, for W&B's tags."""
    if not (spec.ablation and spec.row):
        return None
    from lit_transformer.ablation import load_ablation

    return load_ablation(spec.ablation).row(spec.row).group or None
