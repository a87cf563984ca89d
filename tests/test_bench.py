"""Benchmark plumbing (not speed goals): FLOP formula, commands and their JSON."""

from __future__ import annotations

import json

from lit_transformer.bench.batching import bench_batching
from lit_transformer.bench.train import TrainShape, bench_train, train_step_flops
from lit_transformer.cli.main import main


def test_flop_formula_by_hand():
    # N 1, d 2, d_ff 3, h 1 (d_k 2), V 5, B 1, S 1, T 1.
    s = TrainShape(
        d_model=2, heads=1, layers=1, d_ff=3, vocab_size=5, batch_size=1, src_len=1, tgt_len=1
    )
    proj = 2 * 2 * (2 * 2 + 2) + 2 * 2 * 2  # Q, K, V, O: 24
    enc = proj + 2 * 1 * 4 + 4 * 2 * 3  # + QKᵀ/AV 8 + FFN 24 = 56
    dec = enc + (2 * 2 * 2 + 2 * 2 * 2) + 2 * 1 * 4  # + cross Q, O 16 + cross QKᵀ/AV 8 = 80
    fwd = enc + dec + 2 * 2 * 4 + 2 * 2 * 5  # + cross K, V of the source 16 + output 20
    assert train_step_flops(s) == 3 * fwd


def test_bench_train_compares_with_plain_pytorch():
    s = TrainShape(
        d_model=32, heads=2, layers=1, d_ff=64, vocab_size=100, batch_size=4, src_len=6, tgt_len=5
    )
    out = bench_train(s, steps=1, rounds=1)
    for name in ("ours", "plain_pytorch"):
        assert out[name]["tgt_tokens_per_s"] > 0 and 0 < out[name]["fraction_of_peak"] < 5
    assert out["speedup_vs_plain"] > 0


def test_bench_choices_times_each_choice_and_names_what_runs_here(monkeypatch, capsys):
    from lit_transformer.model import cpu_kernels

    monkeypatch.setenv(cpu_kernels.KERNELS_ENV, "decode_attention=sdpa")
    cpu_kernels.choices.cache_clear()
    try:
        assert main(["bench", "choices", "--precision", "32", "--reps", "1", "--json"]) == 0
    finally:
        cpu_kernels.choices.cache_clear()
    r = json.loads(capsys.readouterr().out)
    assert r["precision"] == "32" and len(r["choices"]) == 5
    assert all(c["ours_ms"] > 0 and c["alternative_ms"] > 0 for c in r["choices"].values())
    assert r["kernels"]["decode_attention"] == r["kernels"][cpu_kernels.BF16_DECODE] == "sdpa"
    assert r["kernels"]["attention"] == "matmul"


def test_bench_batching_on_real_multi30k(data_root, capsys):
    out = bench_batching("multi30k", 8000, 2048, str(data_root))
    assert out["pairs"] == 29000 and 0.5 < out["real_token_fraction"] <= 1.0
    assert main(["bench", "batching", "--data-root", str(data_root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batches"] == out["batches"]


def test_bench_claims_completes_every_trial_once(tmp_path, capsys):
    """Three workers claim a study of 12 trials on SQLite: each claimed and told once."""
    import optuna

    url = f"sqlite:///{tmp_path / 'claims.db'}"
    argv = ["bench", "claims", "--storage", url, "--workers", "3", "--trials", "12", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["trials"] == 12 and r["workers"] == 3 and r["claims_per_s"] > 0
    assert 0 < r["lock_held"]["mean_ms"] <= r["lock_held"]["max_ms"]
    study = optuna.load_study(study_name=r["study"], storage=url)
    seeds = sorted(
        t.params.get("seed", t.system_attrs["fixed_params"]["seed"]) for t in study.trials
    )
    assert seeds == list(range(12)) and {t.state.name for t in study.trials} == {"COMPLETE"}


def test_bench_data_stages_on_a_small_synthetic_corpus(data_root, tmp_path):
    """The stages `bench data` runs in fresh processes, here in-process on 3,000 pairs: the
    synthetic corpus has the planted empty and over-long pairs, and each stage measures."""
    import gzip
    import time

    from lit_transformer.bench import data as bench

    prefix = bench.synthetic_corpus(data_root, tmp_path / "syn" / "train", 3000)
    with gzip.open(f"{prefix}.de.gz", "rt") as f:
        de = f.read().split("\n")[:-1]
    with gzip.open(f"{prefix}.en.gz", "rt") as f:
        en = f.read().split("\n")[:-1]
    assert len(en) == len(de) == 3000 and de[499] == "" and len(en[1000].split()) > 250
    opts = {
        "data_root": str(data_root),
        "prefix": str(prefix),
        "cache": str(tmp_path / "cache"),
        "vocab_size": 300,
        "tokenizer_sentences": 2000,
        "max_tokens": 512,
        "spawned": time.time(),
    }
    prepared = bench.stage_prepare(opts)
    removed = prepared["pairs"]["removed"]
    assert removed["empty"] == 6 and removed["too_long"] == 1  # pairs 499 + 500k; 1000
    assert prepared["pairs"]["kept"] == 3000 - sum(removed.values())
    assert set(prepared["timings_s"]) == {"hash_s", "scan_s", "tokenizer_s", "encode_s"}
    restart = bench.stage_restart(opts)
    assert restart["pairs"] == prepared["pairs"]["kept"] and restart["batches"] > 1
    ranks = [bench.stage_rank({**opts, "rank": r, "world": 2}) for r in range(2)]
    assert all(r["ids_bytes"] > 0 and "anonymous" in r["added"] for r in ranks)
