"""Shared pytest fixtures."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port(low: int = 0, high: int = 0) -> int:
    """A port nothing listens on: any (``low`` 0), or the first free one in [low, high)."""
    for port in range(low, high) if low else [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in [{low}, {high})")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared parallel data ($LIT_TRANSFORMER_DATA or <repo>/../shared/data); skip if absent."""
    env = os.environ.get("LIT_TRANSFORMER_DATA")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not (root / "multi30k").is_dir():
        pytest.skip(f"shared data not found at {root} (set LIT_TRANSFORMER_DATA)")
    return root


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache root (LIT_TRANSFORMER_CACHE) so tests never touch ~/.cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("LIT_TRANSFORMER_CACHE", str(cache))
    return cache


TINY_ABLATION = """\
scale: test
description: a tiny model on a slice of Multi30k, for end-to-end tests
defaults:
  model: {n_layers: 1, d_model: 32, d_ff: 64, heads: 2, d_k: 16, d_v: 8, dropout: 0.1,
          max_positions: 128}
  data: {corpus: multi30k, vocab_size: 400, max_tokens: 512}
  optim: {warmup_steps: 20, lr_scale: 2.0}
  trainer: {max_steps: 20, precision: "32", val_check_interval: 10,
            checkpoint_every_n_steps: 5, keep_checkpoints: 3, log_every_n_steps: 5,
            wandb: disabled}
rows:
  - id: base
    group: base
    changes: the tiny base
    paper: {dev_ppl: 4.92, dev_bleu: 25.8, params_millions: 65, train_steps: 100000}
  - id: A-h1
    group: A
    changes: h=1
    model: {heads: 1, d_k: 32, d_v: 32}
"""


@pytest.fixture(scope="session")
def small_data_root(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A slice of the real Multi30k (600 train, 40 val, 40 test pairs) laid out as a data root."""
    import gzip

    root = tmp_path_factory.mktemp("data")
    sizes = {"train": 600, "val": 40, "test_2016_flickr": 40}
    for split, n in sizes.items():
        for lang in ("en", "de"):
            with gzip.open(data_root / "multi30k" / f"{split}.{lang}.gz", "rt") as fh:
                lines = [next(fh) for _ in range(n)]
            out = root / "multi30k" / f"{split}.{lang}.gz"
            out.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(out, "wt") as fh:
                fh.writelines(lines)
    return root


@pytest.fixture(scope="session")
def tiny_ablation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("abl") / "tiny.yaml"
    path.write_text(TINY_ABLATION)
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer/encoding cache for all end-to-end runs of a session."""
    return tmp_path_factory.mktemp("cache")
