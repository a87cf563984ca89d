"""``lit-transformer`` command line: params, fit, validate, test, translate, average.

Entry points stay thin: they parse arguments, build a configuration and call into the
package. Every user error (bad YAML, unknown row, impossible dims, bad data, missing file)
ends as one ``error: …`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from lit_transformer.config import ConfigError
from lit_transformer.malloc import reuse_freed_memory
from lit_transformer.precision import DECODE_PRECISIONS, TRAIN_PRECISIONS

EXIT_USAGE = 2
EXIT_DIVERGED = 3


def _user_errors() -> tuple[type[BaseException], ...]:
    from lit_transformer.data.corpora import DataError
    from lit_transformer.model.positions import SequenceTooLongError
    from lit_transformer.training.average import CheckpointError

    return (ConfigError, DataError, SequenceTooLongError, CheckpointError, FileNotFoundError)


# -- params -----------------------------------------------------------------------------------
def cmd_params(args: argparse.Namespace) -> int:
    from lit_transformer.ablation import load_ablation
    from lit_transformer.params import ablation_params

    if args.vocab_size <= 0:
        raise ConfigError(f"--vocab-size must be positive, got {args.vocab_size}")
    ablation = load_ablation(args.file)
    rows = ablation_params(ablation, args.vocab_size)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'row':<16}{'params':>14}{'Δ base':>12}{'paper (M)':>11}{'paper Δ':>9}")
    for r in rows:
        paper = "" if r["paper_params_m"] is None else f"{r['paper_params_m']:g}"
        paper_d = "" if r["paper_delta_m"] is None else f"{r['paper_delta_m']:+g}"
        print(f"{r['row']:<16}{r['params']:>14,}{r['delta_m']:>+11.1f}M{paper:>11}{paper_d:>9}")
    return 0


# -- fit ----------------------------------------------------------------------------------------
def build_run_config(args: argparse.Namespace, extra: list[str]) -> Any:
    from lit_transformer.ablation import load_ablation
    from lit_transformer.config import RunConfig, deep_merge, load_yaml, parse_overrides

    overrides = parse_overrides(extra)
    flag_overrides: dict[str, Any] = {"trainer": {}, "data": {}}
    if getattr(args, "max_steps", None) is not None:
        flag_overrides["trainer"]["max_steps"] = args.max_steps
    if getattr(args, "max_minutes", None) is not None:
        flag_overrides["trainer"]["max_minutes"] = args.max_minutes
    for name in ("devices", "precision", "wandb"):
        if getattr(args, name, None) is not None:
            flag_overrides["trainer"][name] = getattr(args, name)
    if getattr(args, "data_root", None):
        flag_overrides["data"]["data_root"] = args.data_root
    raw: dict[str, Any] = {}
    if getattr(args, "config", None):
        loaded = load_yaml(args.config)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{args.config}: expected a mapping of model/data/optim/trainer")
        raw = loaded or {}
    merged = deep_merge(deep_merge(raw, overrides), flag_overrides)
    if getattr(args, "ablation", None):
        if not args.row:
            raise ConfigError("--ablation needs --row")
        return load_ablation(args.ablation).row_config(args.row, merged)
    if getattr(args, "row", None):
        raise ConfigError("--row needs --ablation")
    return RunConfig.from_dict(merged)


def cmd_fit(args: argparse.Namespace, extra: list[str]) -> int:
    cfg = build_run_config(args, extra)
    if cfg.trainer.max_steps < 0 and not cfg.trainer.max_minutes and cfg.trainer.max_epochs is None:
        raise ConfigError("fit needs a budget: --max-steps N or --max-minutes M")
    from lit_transformer.training.run import RunSpec, run_fit

    out = Path(args.out)
    callbacks = []
    if args.trial:
        from lit_transformer.sweep.pruning import StoragePruningCallback

        callbacks.append(StoragePruningCallback(args.trial))
    spec = RunSpec(
        config=cfg,
        out_dir=out,
        seed=args.seed,
        row=args.row,
        ablation=args.ablation,
        group=args.group,
        test=not args.no_test,
        final_beam=args.beam,
        final_alpha=args.alpha,
        callbacks=tuple(callbacks),
        job_type=args.job_type,
    )
    from lit_transformer.training.module import DivergenceError

    try:
        result = run_fit(spec)
    except DivergenceError as exc:
        # Recorded for the sweep, which ends the trial FAIL with this reason and goes on.
        if _is_rank_zero():
            out.mkdir(parents=True, exist_ok=True)
            (out / "failure.json").write_text(json.dumps({"reason": f"diverged: {exc}"}) + "\n")
        print(f"error: diverged: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    if _is_rank_zero():
        print(_summary(result))
    return 0


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("RANK", "0")) == 0


def _summary(result: dict[str, Any]) -> str:
    lines = [
        f"row {result.get('row') or '-'} seed {result['seed']}: {result['steps']} steps, "
        f"{result['params']:,} params, {result['wall_s']:.0f} s",
        f"dev ppl {result['dev_ppl']:.2f}"
        + (f"  dev BLEU {result['dev_bleu']:.2f}" if result.get("dev_bleu") is not None else ""),
    ]
    if result.get("test_bleu") is not None:
        lines.append(f"test BLEU {result['test_bleu']:.2f} (beam {result['beam']})")
    if result.get("test_bleu_averaged") is not None:
        lines.append(
            f"test BLEU {result['test_bleu_averaged']:.2f} "
            f"(average of last {result['averaged_checkpoints']} checkpoints)"
        )
    if result.get("bleu_signature"):
        lines.append(f"sacreBLEU {result['bleu_signature']}")
    lines.append(f"result: {Path(result['checkpoint']).parent / 'result.json'}")
    return "\n".join(lines)


# -- validate / test ------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from lit_transformer.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.ckpt,
        stage=args.command,
        data_root=args.data_root,
        beam=args.beam,
        alpha=args.alpha,
        corpus=args.corpus,
        split=args.split,
        precision=args.precision,
    )
    print(json.dumps(metrics, indent=2))
    return 0


# -- translate ------------------------------------------------------------------------------------
def cmd_translate(args: argparse.Namespace) -> int:
    from lit_transformer.decoding.translate import load_translator

    translator = load_translator(args.ckpt, args.precision)
    if args.input and args.input != "-":
        path = Path(args.input)
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    for line in translator.translate(lines, beam=args.beam, alpha=args.alpha):
        print(line)
    return 0


# -- average --------------------------------------------------------------------------------------
def cmd_average(args: argparse.Namespace) -> int:
    from lit_transformer.training.average import (
        CheckpointError,
        average_checkpoints,
        find_checkpoints,
        save_atomic,
    )

    paths = [Path(p) for p in args.checkpoints]
    if len(paths) == 1 and paths[0].is_dir():
        paths = find_checkpoints(paths[0])
        if not paths:
            raise CheckpointError(f"{args.checkpoints[0]}: no checkpoints found")
    if args.last:
        paths = paths[-args.last :]
    averaged = average_checkpoints(paths)
    save_atomic(averaged, Path(args.out))
    print(f"averaged {len(paths)} checkpoints -> {args.out}")
    return 0


# -- sweep ----------------------------------------------------------------------------------------
def _sweep_command(args: argparse.Namespace, redacted_url: str) -> str:
    """The user's sweep command line, as recorded with the study (password redacted)."""
    parts = ["lit-transformer", "sweep", str(args.spec)]
    if args.seeds:
        parts += ["--seeds", ",".join(map(str, args.seeds))]
    for flag, value in (
        ("--storage", redacted_url if args.storage else None),
        ("--study-name", args.study_name),
        ("--workers", args.workers),
        ("--devices", args.devices),
        ("--run-dir", args.run_dir if args.run_dir != "runs/sweeps" else None),
    ):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(parts)


def cmd_sweep(args: argparse.Namespace) -> int:
    from lit_transformer.sweep.orchestrator import STORAGE_ENV, Worker, record_provenance
    from lit_transformer.sweep.spec import load_spec
    from lit_transformer.sweep.status import format_status, status_table
    from lit_transformer.sweep.storage import (
        default_storage,
        load_or_create_study,
        open_storage,
        redact,
    )

    spec = load_spec(args.spec)
    if args.devices:
        spec.devices = args.devices
    if args.seeds:
        spec.seeds = args.seeds
    name = args.study_name or spec.study
    run_dir = Path(args.run_dir)
    url = args.storage or os.environ.get(STORAGE_ENV) or default_storage(run_dir, name)
    if args.status:
        study = load_or_create_study(open_storage(url), name)
        print(format_status(status_table(study), name))
        return 0
    from lit_transformer.sweep.orchestrator import default_workers

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {args.workers}")
    workers = args.workers or default_workers(spec.devices, spec.protocol)
    threads = args.threads or max(1, (os.cpu_count() or 1) // (workers * spec.devices))
    shown_url = redact(url)
    print(
        f"sweep {name}: {spec.kind}, storage {shown_url}, {workers} worker(s) × {threads} "
        "thread(s)",
        flush=True,
    )
    command = None if args.child else _sweep_command(args, shown_url)
    if workers == 1:
        Worker(spec, url, name, run_dir, threads, args.wandb, command).run()
    else:
        # Create the schema and the study once, before the workers race to do it.
        study = load_or_create_study(open_storage(url, spec.max_retry), name)
        if command:
            record_provenance(study, spec, command)
        # Each worker is its own process (a crash takes one worker, not the sweep); the
        # storage URL travels by environment so a password never shows in `ps`.
        env = {**os.environ, STORAGE_ENV: url}
        cmd = [
            sys.executable,
            "-m",
            "lit_transformer",
            "sweep",
            str(args.spec),
            "--workers",
            "1",
            "--study-name",
            name,
            "--run-dir",
            str(run_dir),
            "--wandb",
            args.wandb,
            "--threads",
            str(threads),
            "--child",
        ]
        if args.devices:
            cmd += ["--devices", str(args.devices)]
        if args.seeds:
            cmd += ["--seeds", ",".join(map(str, args.seeds))]
        procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"error: worker exit codes {codes}", file=sys.stderr)
            return 1
    study = load_or_create_study(open_storage(url), name)
    print(format_status(status_table(study), name))
    return 0


def cmd_postgres(args: argparse.Namespace) -> int:
    from lit_transformer.sweep import postgres

    if args.action == "start":
        print(postgres.start(Path(args.dir), args.port, args.db))
    else:
        postgres.stop(Path(args.dir))
    return 0


# -- report ---------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from lit_transformer.report import make_report

    notes = None
    if args.notes:
        path = Path(args.notes)
        if not path.is_file():
            raise ConfigError(f"{path}: notes file not found")
        try:
            notes = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: notes file is not UTF-8 text") from None
        notes = notes.replace("\r\n", "\n")
    out = make_report(args.storage, args.study, Path(args.out), args.ablation, args.wandb, notes)
    s = out["summary"]
    print(
        f"{s['complete_rows']}/{s['rows']} rows complete; direction agrees with the paper on "
        f"{s['agree_ppl']}/{s['judged_ppl']} (PPL) and {s['agree_bleu']}/{s['judged_bleu']} "
        f"(BLEU) rows; written: {', '.join(Path(f).name for f in out['files'])}"
    )
    return 0


# -- bench ----------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from lit_transformer import bench

    if args.what == "train":
        shape = bench.TrainShape(
            d_model=args.d_model,
            heads=args.heads,
            layers=args.layers,
            d_ff=args.d_ff,
            vocab_size=args.vocab_size,
            batch_size=args.batch_size,
            src_len=args.src_len,
            tgt_len=args.tgt_len,
            precision=args.precision,
        )
        result = bench.bench_train(shape, steps=args.steps, rounds=args.rounds)
        text = (
            f"{result['cpu']}, {result['threads']} threads, {result['precision']} "
            f"({result['precision_reason']})\n"
            f"ours {result['ours']['tgt_tokens_per_s']:.0f} tgt tok/s, "
            f"{result['ours']['flops_per_s'] / 1e9:.1f} GFLOP/s "
            f"({100 * result['ours']['fraction_of_peak']:.0f}% of measured matmul peak "
            f"{result['matmul_peak'] / 1e9:.0f}); plain nn.Transformer "
            f"{result['plain_pytorch']['tgt_tokens_per_s']:.0f} tgt tok/s; "
            f"speed-up {result['speedup_vs_plain']:.2f}x"
        )
    elif args.what == "decode":
        result = bench.bench_decode(
            args.ckpt, args.data_root, args.split, args.beam, args.limit, args.precision
        )
        text = (
            f"{result['cpu']}, {result['threads']} threads\n"
            f"{result['sentences']} sentences, beam {result['beam']}, {result['precision']}: "
            "cached "
            f"{result['cached']['seconds']:.1f} s ({result['cached']['sentences_per_s']:.1f}/s), "
            f"uncached {result['uncached']['seconds']:.1f} s; speed-up "
            f"{result['cache_speedup']:.2f}x, identical output: {result['identical_output']}"
        )
    elif args.what == "choices":
        if args.reps < 1:
            raise ConfigError(f"--reps must be at least 1, got {args.reps}")
        result = bench.bench_choices(args.precision, args.reps)
        lines = [f"{result['cpu']}, {result['threads']} threads, {result['precision']}"]
        for name, r in result["choices"].items():
            lines.append(
                f"{name}: ours {r['ours_ms']:.2f} ms, alternative {r['alternative_ms']:.2f} ms, "
                f"{r['speedup']:.2f}x"
            )
        text = "\n".join(lines)
    else:
        result = bench.bench_batching(args.corpus, args.vocab_size, args.max_tokens, args.data_root)
        text = (
            f"{result['corpus']}: {result['batches']} batches of <= {result['max_tokens']} "
            f"tokens, real-token fraction {result['real_token_fraction']:.3f}"
        )
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


# -- parser ---------------------------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,3, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return values


def _add_decode_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        choices=DECODE_PRECISIONS,
        help="decoding precision (default auto: the training precision where it is fast here, "
        "else 32)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lit-transformer",
        description="Attention Is All You Need, Table 3, in PyTorch Lightning.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("params", help="parameter count of each ablation row")
    sp.add_argument("file", help="ablation YAML, e.g. ablations/table3.yaml")
    sp.add_argument("--vocab-size", type=int, required=True)
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser(
        "fit",
        help="train one configuration (an ablation row or a --config YAML)",
        description="Extra Lightning-style overrides are accepted: --model.dropout 0.2, "
        "--trainer.precision=bf16-mixed, --optim.warmup_steps 800, …",
    )
    sp.add_argument("--ablation", help="ablation YAML (with --row)")
    sp.add_argument("--row", help="row id in the ablation file, e.g. base, A-h1")
    sp.add_argument("--config", help="run config YAML with model/data/optim/trainer sections")
    sp.add_argument("--seed", type=int, default=0)
    budget = sp.add_mutually_exclusive_group()
    budget.add_argument("--max-steps", type=int)
    budget.add_argument("--max-minutes", type=float)
    sp.add_argument("--out", required=True, help="output directory (result.json, checkpoints)")
    sp.add_argument("--data-root", help="data root (default: $LIT_TRANSFORMER_DATA)")
    sp.add_argument("--devices", type=int)
    sp.add_argument(
        "--precision",
        choices=TRAIN_PRECISIONS,
        help="auto (default): bf16-mixed where bf16 matmuls are fast here, else 32",
    )
    sp.add_argument("--wandb", choices=["online", "offline", "disabled"])
    sp.add_argument("--group", help="W&B group (a sweep passes its study name)")
    sp.add_argument("--beam", type=int, default=4, help="beam for the final evaluation")
    sp.add_argument("--alpha", type=float, default=0.6)
    sp.add_argument("--no-test", action="store_true", help="skip the test-set evaluation")
    sp.add_argument("--job-type", default="train", help="W&B job type (a sweep passes 'trial')")
    sp.add_argument("--trial", help=argparse.SUPPRESS)  # set by the sweep orchestrator

    for stage in ("validate", "test"):
        sp = sub.add_parser(stage, help=f"{stage} a checkpoint (dev or test set)")
        sp.add_argument("--ckpt", required=True)
        sp.add_argument("--data-root")
        sp.add_argument("--corpus", help="corpus (default: the one it was trained on)")
        sp.add_argument("--split", help="split or role (default: dev for validate, test for test)")
        sp.add_argument("--beam", type=int, default=4)
        sp.add_argument("--alpha", type=float, default=0.6)
        _add_decode_precision(sp)

    sp = sub.add_parser("translate", help="translate raw lines (stdin or --input) with beam search")
    sp.add_argument("--ckpt", required=True)
    sp.add_argument("--input", help="file of source lines (default: stdin)")
    sp.add_argument("--beam", type=int, default=4)
    sp.add_argument("--alpha", type=float, default=0.6)
    _add_decode_precision(sp)

    sp = sub.add_parser("sweep", help="run (or resume) an Optuna study from a sweeps/*.yaml spec")
    sp.add_argument("spec", help="study spec, e.g. sweeps/table3-cpu.yaml")
    sp.add_argument("--storage", help="Optuna storage URL (default: sqlite file in --run-dir)")
    sp.add_argument("--study-name", help="study name (default: the spec's)")
    sp.add_argument(
        "--workers",
        type=int,
        help="worker processes on this host (default: for an equal-steps study on a CPU machine "
        "of up to 4 cores one per core, one thread each; else 1 with every core)",
    )
    sp.add_argument("--devices", type=int, help="devices per trial (DDP when > 1)")
    sp.add_argument(
        "--seeds",
        type=_int_list,
        help="comma-separated seeds instead of the spec's (e.g. 1 or 1,2); re-run with more later",
    )
    sp.add_argument("--run-dir", default="runs/sweeps", help="trial directories and SQLite file")
    sp.add_argument("--wandb", choices=["online", "offline", "disabled"], default="offline")
    sp.add_argument("--status", action="store_true", help="print the rows x seeds table and exit")
    sp.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    sp.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # a worker process

    sp = sub.add_parser("postgres", help="start/stop a local PostgreSQL for sweep storage")
    sp.add_argument("action", choices=["start", "stop"])
    sp.add_argument("--dir", default="runs/postgres")
    sp.add_argument("--port", type=int, default=5433)
    sp.add_argument("--db", default="optuna")

    sp = sub.add_parser("report", help="Table 3 replica from a study: md, tex, csv, html, plots")
    sp.add_argument("--storage", required=True, help="the study's storage URL")
    sp.add_argument("--study", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--ablation", help="ablation file (default: the one the study recorded)")
    sp.add_argument("--notes", help="a Markdown file of notes/caveats to add to the report")
    sp.add_argument("--wandb", choices=["online", "offline", "disabled"], default="offline")

    sp = sub.add_parser("bench", help="benchmarks: train throughput, decoding, batching")
    bench_sub = sp.add_subparsers(dest="what", required=True)
    b = bench_sub.add_parser("train", help="training step vs plain nn.Transformer")
    for name, default in (
        ("d-model", 256),
        ("heads", 4),
        ("layers", 3),
        ("d-ff", 1024),
        ("vocab-size", 8000),
        ("batch-size", 64),
        ("src-len", 20),
        ("tgt-len", 20),
        ("steps", 10),
        ("rounds", 3),
    ):
        b.add_argument(f"--{name}", type=int, default=default)
    b.add_argument("--precision", choices=DECODE_PRECISIONS, default="auto")
    b.add_argument("--json", action="store_true")
    b = bench_sub.add_parser("decode", help="beam search with and without the KV cache")
    b.add_argument("--ckpt", required=True)
    b.add_argument("--data-root")
    b.add_argument("--split", default="test")
    b.add_argument("--beam", type=int, default=4)
    b.add_argument("--limit", type=int, help="first N sentences only")
    _add_decode_precision(b)
    b.add_argument("--json", action="store_true")
    b = bench_sub.add_parser(
        "choices", help="each CPU-specific kernel choice against its alternative, on this CPU"
    )
    b.add_argument("--precision", choices=DECODE_PRECISIONS, default="auto")
    b.add_argument("--reps", type=int, default=20)
    b.add_argument("--json", action="store_true")
    b = bench_sub.add_parser("batching", help="real-token fraction of training batches")
    b.add_argument("--corpus", default="multi30k")
    b.add_argument("--vocab-size", type=int, default=8000)
    b.add_argument("--max-tokens", type=int, default=2048)
    b.add_argument("--data-root")
    b.add_argument("--json", action="store_true")

    sp = sub.add_parser("average", help="average the last K checkpoints")
    sp.add_argument("checkpoints", nargs="+", help="checkpoint files, or one directory")
    sp.add_argument("--last", type=int, help="use only the last K (by step)")
    sp.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "fit":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    try:
        reuse_freed_memory()
        if args.command == "params":
            return cmd_params(args)
        if args.command == "fit":
            return cmd_fit(args, extra)
        if args.command in ("validate", "test"):
            return cmd_evaluate(args)
        if args.command == "translate":
            return cmd_translate(args)
        if args.command == "average":
            return cmd_average(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "postgres":
            return cmd_postgres(args)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
