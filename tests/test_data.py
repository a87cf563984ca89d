"""Tests of the data layer: corpora, tokenizer caches, token-budget sampler, datamodule."""

from __future__ import annotations

import gzip
import pickle
import time
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lit_transformer.data.corpora import (
    CORPORA,
    DataError,
    download,
    get_corpus,
    load_split,
    read_parallel,
    resolve_data_root,
)
from lit_transformer.data.datamodule import TranslationDataModule, collate
from lit_transformer.data.sampler import TokenBudgetBatchSampler, padding_fraction
from lit_transformer.data.tokenizer import (
    EncodedTexts,
    Tokenizer,
    encode_cached,
    train_or_load,
)


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data))
    return path


def write_pair(root: Path, stem: str, en: list[str], de: list[str]) -> None:
    write_gz(root / f"{stem}.en.gz", ("\n".join(en) + "\n").encode())
    write_gz(root / f"{stem}.de.gz", ("\n".join(de) + "\n").encode())


# ---------------------------------------------------------------------------------- corpora


def test_read_parallel_strips_and_accepts_plain(tmp_path: Path) -> None:
    write_pair(tmp_path, "c/a", ["Hello  ", "World\t"], ["Hallo", " Welt "])
    assert read_parallel(tmp_path, "c/a") == (["Hello", "World"], ["Hallo", "Welt"])
    (tmp_path / "c/b.en").write_text("x\ny\n")
    (tmp_path / "c/b.de").write_text("X\nY\n")
    assert read_parallel(tmp_path, "c/b") == (["x", "y"], ["X", "Y"])
    # Unicode line separators inside a sentence must not split it (would misalign the sides).
    write_pair(tmp_path, "c/u", ["a\u2028b"], ["c"])
    assert read_parallel(tmp_path, "c/u") == (["a\u2028b"], ["c"])


def _error(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_file_error(tmp_path: Path) -> None:
    write_gz(tmp_path / "c/a.en.gz", b"x\n")
    msg = _error(read_parallel, tmp_path, "c/a")
    assert "a.de.gz" in msg and "file not found" in msg


def test_line_count_error(tmp_path: Path) -> None:
    write_pair(tmp_path, "c/a", ["x", "y", "z"], ["X", "Y"])
    msg = _error(read_parallel, tmp_path, "c/a")
    assert "a.en.gz has 3 lines" in msg and "a.de.gz has 2" in msg


def test_invalid_utf8_error(tmp_path: Path) -> None:
    write_gz(tmp_path / "c/a.en.gz", b"ok\nalso ok\nbad \xff\xfe\n")
    write_gz(tmp_path / "c/a.de.gz", b"ok\nok\nok\n")
    msg = _error(read_parallel, tmp_path, "c/a")
    assert msg.endswith("a.en.gz:3: invalid UTF-8")


def test_empty_sentence_error(tmp_path: Path) -> None:
    write_pair(tmp_path, "c/a", ["x", "y"], ["X", "   "])
    msg = _error(read_parallel, tmp_path, "c/a")
    assert msg.endswith("a.de.gz:2: empty sentence")


def test_registry_and_roles() -> None:
    m = get_corpus("multi30k")
    assert (m.split_for("train"), m.split_for("dev"), m.split_for("test")) == (
        "train",
        "val",
        "test_2016_flickr",
    )
    assert m.split_for("test_2017_flickr") == "test_2017_flickr"
    wmt = get_corpus("wmt")
    assert wmt.train is None and wmt.stems("dev") == ("wmt/newstest2013",)
    assert "news-test2008" in wmt.splits and "newstest2020" in wmt.splits
    with pytest.raises(DataError, match="no train split"):
        wmt.split_for("train")
    comp = get_corpus("wmt-composite")
    train = comp.stems("train")
    assert {"tatoeba/train", "multi30k/train", "ddtp/train", "wmt/newstest2012"} <= set(train)
    assert "wmt/newstest2013" not in train and "wmt/newstest2014" not in train
    assert len([s for s in train if s.startswith("wmt/")]) == 12
    assert comp.stems("dev") == ("wmt/newstest2013",) and comp.stems("test") == (
        "wmt/newstest2014",
    )
    assert get_corpus("tatoeba").split_for("dev") == "test"
    assert get_corpus("ddtp").test is None
    with pytest.raises(DataError, match="unknown corpus 'nope'"):
        get_corpus("nope")
    with pytest.raises(DataError, match="no split 'bogus'"):
        m.split_for("bogus")
    assert set(CORPORA) == {"multi30k", "wmt", "tatoeba", "ddtp", "wmt-composite", "wmt14-en-de"}
    w14 = get_corpus("wmt14-en-de")
    assert (w14.stems("dev"), w14.stems("test")) == (
        ("wmt14-en-de/newstest2013",),
        ("wmt14-en-de/newstest2014",),
    )


def test_resolve_data_root(tmp_path: Path, tmp_cache: Path, monkeypatch) -> None:
    monkeypatch.delenv("LIT_TRANSFORMER_DATA", raising=False)
    work = tmp_path / "proj" / "repo"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    with pytest.raises(DataError, match="--data-root"):
        resolve_data_root(None)
    (tmp_cache / "data").mkdir()
    assert resolve_data_root(None) == (tmp_cache / "data").resolve()
    (tmp_path / "proj" / "shared" / "data").mkdir(parents=True)
    assert resolve_data_root(None) == (tmp_path / "proj" / "shared" / "data").resolve()
    monkeypatch.setenv("LIT_TRANSFORMER_DATA", str(tmp_path))
    assert resolve_data_root(None) == tmp_path.resolve()
    assert resolve_data_root(work) == work.resolve()
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_root(tmp_path / "missing")


def test_load_split_concatenates_real(data_root: Path) -> None:
    src, tgt = load_split(data_root, "multi30k", "dev")
    assert len(src) == len(tgt) == 1014
    src, tgt = load_split(data_root, "wmt", "test")
    assert len(src) == 3003


# --------------------------------------------------------------------------------- download


def test_download_file_urls(tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    write_gz(srv / "a.en.gz", "Grüße\n".encode())
    (srv / "b.de").write_text("plain text\n", encoding="utf-8")
    (srv / "bad.en").write_bytes(b"\xff\xfe not utf8")
    urls = {
        "c/a.en.gz": (srv / "a.en.gz").as_uri(),
        "c/b.de.gz": (srv / "b.de").as_uri(),
        "c/bad.en.gz": (srv / "bad.en").as_uri(),
        "c/gone.en.gz": (srv / "gone.en").as_uri(),
    }
    dest = tmp_path / "dest"
    out = download(["c/a.en.gz", "c/b.de.gz"], dest, urls)
    assert [p.name for p in out] == ["a.en.gz", "b.de.gz"]
    assert gzip.decompress((dest / "c/a.en.gz").read_bytes()).decode() == "Grüße\n"
    assert gzip.decompress((dest / "c/b.de.gz").read_bytes()) == b"plain text\n"
    for bad in ("c/bad.en.gz", "c/gone.en.gz"):
        with pytest.raises(DataError, match="download"):
            download([bad], dest, urls)
    assert sorted(p.name for p in (dest / "c").iterdir()) == ["a.en.gz", "b.de.gz"]
    with pytest.raises(DataError, match="tatoeba"):
        download(["tatoeba/train.en.gz"], dest, urls)


# -------------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def spm_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spm_cache")


@pytest.fixture(scope="module")
def m30k_train(data_root: Path) -> tuple[list[str], list[str]]:
    return load_split(data_root, "multi30k", "train")


def test_tokenizer_cache_and_roundtrip(m30k_train, spm_cache: Path, data_root: Path) -> None:
    src, tgt = m30k_train
    t0 = time.perf_counter()
    tok = train_or_load(src, tgt, 1000, spm_cache)
    t_train = time.perf_counter() - t0
    mtime = tok.model_path.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = train_or_load(src, tgt, 1000, spm_cache)
    t_load = time.perf_counter() - t0
    assert again.model_path == tok.model_path and again.sha256 == tok.sha256
    assert tok.model_path.stat().st_mtime_ns == mtime
    assert t_load < t_train
    assert tok.model_path.parent.parent == spm_cache / "spm"
    assert [p.name for p in (spm_cache / "spm").iterdir()] == [tok.model_path.parent.name]
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id) == (1000, 0, 2, 3)

    dev_src, dev_tgt = load_split(data_root, "multi30k", "dev")
    sample = dev_src[:50] + dev_tgt[:50]
    ids = tok.encode(sample)
    assert all(0 not in s and 2 not in s and 3 not in s for s in ids)
    assert tok.decode(ids) == sample
    # Specials and out-of-range ids are ignored when decoding.
    assert tok.decode([[2, *ids[0], 3, 0, 0, 5000]]) == [sample[0]]
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.sha256 == tok.sha256 and clone.encode(sample[:3]) == ids[:3]


def test_tokenizer_vocab_too_large(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="vocab_size=5000 is too large"):
        train_or_load(["a b c", "abc d"], ["x y", "z"], 5000, tmp_path)
    assert not any((tmp_path / "spm").iterdir())  # no half-written cache entry left


def test_encode_cached(m30k_train, spm_cache: Path) -> None:
    src, tgt = m30k_train
    tok = train_or_load(src, tgt, 1000, spm_cache)
    texts = src[:500]
    enc = encode_cached(tok, texts, spm_cache)
    files = list((spm_cache / "enc").glob("*.npz"))
    assert len(files) == 1
    again = encode_cached(tok, texts, spm_cache)
    assert again.to_lists() == enc.to_lists() == tok.encode(texts)
    assert list(enc.lengths) == [len(s) for s in tok.encode(texts)]
    assert list((spm_cache / "enc").glob("*.npz")) == files


# ---------------------------------------------------------------------------------- sampler


def _toy_lens(n: int = 500, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(2, 60, n)
    return src, np.clip(src + rng.integers(-5, 6, n), 2, None)


def test_sampler_budget_and_coverage() -> None:
    src, tgt = _toy_lens()
    src[7] = 300  # longer than the budget alone: must still form a batch of one
    s = TokenBudgetBatchSampler(src, tgt, max_tokens=256, seed=3)
    batches = list(s)
    assert len(batches) == len(s)
    for b in batches:
        assert len(b) * src[b].max() <= 256 or len(b) == 1
        assert len(b) * tgt[b].max() <= 256 or len(b) == 1
    assert [7] in batches
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(src)))  # each pair exactly once
    assert 0 < s.padding_fraction < 0.5
    assert padding_fraction([2, 4], [3, 3]) == pytest.approx(1 - 12 / 14)
    capped = TokenBudgetBatchSampler(src, tgt, max_tokens=10_000, max_sentences=8)
    assert max(len(b) for b in capped) == 8


def _greedy_cut(src, tgt, budget: int, cap: int) -> list[int]:
    """The batching rule written as the plain loop it is (the sampler finds it vectorised)."""
    bounds, max_s, max_t, count = [0], 0, 0, 0
    for s, t in zip(src.tolist(), tgt.tolist(), strict=True):
        new_s, new_t, new_n = max(max_s, s), max(max_t, t), count + 1
        if count and (new_n * new_s > budget or new_n * new_t > budget or new_n > cap):
            bounds.append(bounds[-1] + count)
            max_s, max_t, count = s, t, 1
        else:
            max_s, max_t, count = new_s, new_t, new_n
    return bounds + [bounds[-1] + count] if count else bounds


@pytest.mark.parametrize("budget,cap", [(256, None), (64, None), (10_000, 8), (5, None)])
def test_sampler_cuts_as_the_greedy_loop(budget: int, cap: int | None) -> None:
    rng = np.random.default_rng(budget)
    src, tgt = rng.integers(2, 90, size=3000), rng.integers(2, 90, size=3000)
    src[::97] = 400  # over-long pairs: batches of one
    s = TokenBudgetBatchSampler(src, tgt, max_tokens=budget, max_sentences=cap)
    order = s._base_order
    expected = _greedy_cut(src[order], tgt[order], budget, cap or len(src))
    assert s._bounds.tolist() == expected


def test_sampler_determinism_and_epochs() -> None:
    src, tgt = _toy_lens()
    a = TokenBudgetBatchSampler(src, tgt, max_tokens=256, seed=5)
    b = TokenBudgetBatchSampler(src, tgt, max_tokens=256, seed=5)
    assert list(a) == list(b)
    e0 = list(a)
    a.set_epoch(1)
    e1 = list(a)
    assert e0 != e1 and len(e0) == len(e1)
    assert {frozenset(x) for x in e0} != {frozenset(x) for x in e1}  # buckets vary too
    b.set_epoch(1)
    assert list(b) == e1
    unshuffled = TokenBudgetBatchSampler(src, tgt, max_tokens=256, shuffle=False)
    first = list(unshuffled)
    unshuffled.set_epoch(4)
    assert list(unshuffled) == first


@pytest.mark.parametrize("replicas", [2, 3])
def test_sampler_ranks(replicas: int) -> None:
    src, tgt = _toy_lens(n=301)
    total = TokenBudgetBatchSampler(src, tgt, max_tokens=200, seed=2).num_batches
    per_rank = [
        list(TokenBudgetBatchSampler(src, tgt, 200, seed=2, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    lengths = {len(p) for p in per_rank}
    assert lengths == {-(-total // replicas)}
    covered = Counter(i for p in per_rank for b in p for i in b)
    assert set(covered) == set(range(len(src)))
    # Only padding duplicates, at most one extra copy per pair.
    assert max(covered.values()) <= 2
    assert sum(len(p) for p in per_rank) - total == (-total) % replicas


def test_sampler_epoch_advances_under_lightning() -> None:
    """Lightning calls set_epoch on batch_sampler.sampler each epoch; check it reaches us."""
    src, tgt = _toy_lens(n=64)
    sampler = TokenBudgetBatchSampler(src, tgt, max_tokens=128, seed=0)
    data = [
        (i, np.ones(int(src[i]) - 1, np.int32), np.ones(int(tgt[i]) - 1, np.int32))
        for i in range(len(src))
    ]
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate)
    seen: list[list[int]] = []

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            if len(seen) <= self.current_epoch:
                seen.append(batch["index"].tolist())
            return (self.w**2).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        accelerator="cpu",
    )
    trainer.fit(Probe(), loader)
    assert sampler.epoch == 2
    expected = []
    for e in range(3):
        sampler.set_epoch(e)
        expected.append(next(iter(sampler)))
    assert seen == expected and seen[0] != seen[1]


# ------------------------------------------------------------------------------- datamodule


def test_collate_layout() -> None:
    batch = collate(
        [(4, np.array([7, 8, 9]), np.array([10])), (9, np.array([5]), np.array([6, 7]))]
    )
    assert batch["src"].tolist() == [[7, 8, 9, 3], [5, 3, 0, 0]]
    assert batch["tgt_in"].tolist() == [[2, 10, 0], [2, 6, 7]]
    assert batch["tgt_out"].tolist() == [[10, 3, 0], [6, 7, 3]]
    assert batch["index"].tolist() == [4, 9]
    assert (batch["n_src_tokens"], batch["n_tgt_tokens"]) == (6, 5)
    assert batch["src"].dtype == torch.long


def test_datamodule_multi30k(data_root: Path, m30k_train, spm_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIT_TRANSFORMER_DATA", str(data_root))
    dm = TranslationDataModule(
        vocab_size=1000, max_tokens=2000, cache_dir=str(spm_cache), max_len=40
    )
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    assert isinstance(tok, Tokenizer) and tok.vocab_size == 1000
    t0 = time.perf_counter()
    dm.setup("fit")  # idempotent and cheap
    assert time.perf_counter() - t0 < 0.01 and dm.tokenizer is tok
    assert len(dm.dev_refs) == len(dm.dev_srcs) == 1014 and len(dm.test_refs) == 1000
    assert dm.data_hash and len(dm.data_hash) == 64
    assert dm.hparams.vocab_size == 1000

    train = dm.dataset("train")
    assert 25_000 < len(train) < 29_000  # max_len drops the longest pairs
    assert max(train.src_lens) <= 40 and max(train.tgt_lens) <= 40
    batch = next(iter(dm.train_dataloader()))
    src, tgt_in, tgt_out = batch["src"], batch["tgt_in"], batch["tgt_out"]
    assert src.shape[0] * src.shape[1] <= 2000 and tgt_in.shape == tgt_out.shape
    assert (tgt_in[:, 0] == 2).all() and (tgt_in[:, 1:] == tgt_out[:, :-1]).all()
    for row, idx in enumerate(batch["index"].tolist()):
        n = int((tgt_out[row] != 0).sum())
        assert tgt_out[row, n - 1] == 3 and (tgt_out[row, : n - 1] != 3).all()
        assert src[row, int((src[row] != 0).sum()) - 1] == 3
        assert tgt_out[row, : n - 1].tolist() == tok.encode([m30k_train[1][idx]])[0]
    assert batch["n_tgt_tokens"] == int((tgt_out != 0).sum())
    assert batch["n_src_tokens"] == int((src != 0).sum())

    val = list(dm.val_dataloader())
    indices = sorted(i for b in val for i in b["index"].tolist())
    assert indices == list(range(1014))
    ref = dm.dev_refs[int(val[0]["index"][0])]
    assert tok.decode([val[0]["tgt_out"][0].tolist()]) == [ref]


def test_encoded_texts_roundtrip() -> None:
    seqs = [[1, 2, 3], [], [4]]
    enc = EncodedTexts.from_lists(seqs)
    assert enc.to_lists() == seqs and list(enc.lengths) == [3, 0, 1]


def test_every_seed_shares_one_tokenizer(small_data_root: Path, tmp_cache: Path) -> None:
    """A sweep's trials differ in seed but must share the tokenizer (and its cache)."""
    hashes = set()
    for seed in (1, 2):
        dm = TranslationDataModule(data_root=str(small_data_root), vocab_size=300, seed=seed)
        dm.setup("fit")
        hashes.add(dm.tokenizer.sha256)
    assert len(hashes) == 1
