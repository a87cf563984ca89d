"""A corpus from a user's files (prefixes and TSV), cleaning as the reference recipes do, and
the streamed, memory-mapped training split (data/prepare.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lit_transformer.cli.main import main
from lit_transformer.data import prepare as prepare_mod
from lit_transformer.data.clean import CleanRules
from lit_transformer.data.corpora import (
    DataError,
    Part,
    get_corpus,
    iter_pairs,
    load_split,
    resolve_part,
    split_parts,
    with_files,
)
from lit_transformer.data.prepare import prepare_train
from lit_transformer.data.tokenizer import train_or_load


def write_gz(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def test_tsv_and_prefix_parts(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("Hello .\tHallo .\n  x y \t z\n")
    part = resolve_part(tmp_path, str(tmp_path / "a.tsv"), "en", "de")
    assert part.tgt is None and list(iter_pairs(part)) == [("Hello .", "Hallo ."), ("x y", "z")]
    (tmp_path / "bad.tsv").write_text("one\ttwo\nno tab here\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: expected 2 tab-separated columns, got 1"):
        list(iter_pairs(resolve_part(tmp_path, "bad.tsv", "en", "de")))
    (tmp_path / "empty.tsv").write_text("one\ttwo\n\t x\n")
    with pytest.raises(DataError, match=r"empty.tsv:2: empty sentence"):
        list(iter_pairs(resolve_part(tmp_path, "empty.tsv", "en", "de")))
    assert list(iter_pairs(resolve_part(tmp_path, "empty.tsv", "en", "de"), True))[1] == ("", "x")
    with pytest.raises(DataError, match="nope.tsv: file not found"):
        resolve_part(tmp_path, "nope.tsv", "en", "de")


@pytest.mark.parametrize("n_src,n_tgt", [(4, 3), (3, 4), (2, 1), (1, 2)])
def test_side_lengths_differ(tmp_path: Path, n_src: int, n_tgt: int) -> None:
    write_gz(tmp_path / "c.en.gz", [f"e{i}" for i in range(n_src)])
    write_gz(tmp_path / "c.de.gz", [f"d{i}" for i in range(n_tgt)])
    part = resolve_part(tmp_path, "c", "en", "de")
    with pytest.raises(DataError, match=f"c.en.gz has {n_src} lines but .*c.de.gz has {n_tgt}$"):
        list(iter_pairs(part))


def test_with_files_overrides_roles(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = get_corpus("multi30k")
    c = with_files(base, train="x/train,y.tsv", test="t", tests="news=n1,more=n2.tsv.gz")
    assert c.name == "files" and c.split_for("dev") == "val"  # dev stays the corpus's
    assert c.stems("train") == (str(tmp_path / "x/train"), str(tmp_path / "y.tsv"))
    assert c.stems("test") == (str(tmp_path / "t"),) and c.stems("news") == (str(tmp_path / "n1"),)
    assert with_files(base, test="t").name == "multi30k"
    with pytest.raises(DataError, match="expected NAME=PATH"):
        with_files(base, tests="justapath")


def hand_corpus(root: Path) -> Path:
    """Ten pairs: 2 with an empty side, 2 too long (> 6 words), 2 beyond ratio 2, 4 clean."""
    pairs = [
        ("a b c", "x y z"),
        ("", "leer"),
        ("one two three four five six seven", "eins zwei drei vier fünf sechs sieben"),
        ("a", "x y z"),  # ratio 3
        ("hello world", "hallo welt"),
        ("nur", ""),
        ("a b c d e f g h", "x"),  # too long (charged to the first rule it fails)
        ("p q r s", "u v"),  # ratio 2: kept (not more than 2)
        ("p q r s t", "u v"),  # ratio 2.5
        ("ok", "ok"),
    ]
    write_gz(root / "hand.en.gz", [s for s, _ in pairs])
    write_gz(root / "hand.de.gz", [t for _, t in pairs])
    return root / "hand"


def test_each_cleaning_rule_counts(tmp_path: Path) -> None:
    stem = hand_corpus(tmp_path)
    parts = [resolve_part(tmp_path, str(stem), "en", "de")]
    rules = CleanRules(drop_empty=True, max_words=6, max_ratio=2.0)
    train = prepare_train(parts, tmp_path / "cache", 40, rules)
    assert train.counts.to_dict() == {
        "read": 10,
        "kept": 4,
        "removed": {"empty": 2, "too_long": 2, "ratio": 2},
    }
    assert len(train.src) == len(train.tgt) == 4
    summary = train.counts.summary(rules)
    assert summary == (
        "train: 10 pairs, kept 4 (removed: empty 2, longer than 6 words 2, length ratio > 2.0 2)"
    )
    kept = [train.tokenizer.decode([train.src[i].tolist()])[0] for i in range(4)]
    assert kept == ["a b c", "hello world", "p q r s", "ok"]
    # Without drop_empty an empty training line is the error it is for dev and test sets.
    with pytest.raises(DataError, match=r"hand.en.gz:2: empty sentence"):
        prepare_train(parts, tmp_path / "cache", 40, CleanRules(max_words=6))
    write_gz(tmp_path / "none.en.gz", ["", "a b"])
    write_gz(tmp_path / "none.de.gz", ["x", ""])
    with pytest.raises(DataError, match="drop every training pair"):
        none = [resolve_part(tmp_path, "none", "en", "de")]
        prepare_train(none, tmp_path / "cache", 40, CleanRules(drop_empty=True))


def test_streamed_tokenizer_is_the_in_memory_one(data_root: Path, tmp_path: Path) -> None:
    """The streamed preparation trains the same tokenizer, byte for byte, as the in-memory one
    (so runs before and after it share vocabularies and data hashes), also when sampling."""
    parts = split_parts(data_root, "multi30k", "train", "en", "de")
    src, tgt = load_split(data_root, "multi30k", "train")
    for sample in (2_000_000, 20_000):  # all 58k lines, then a 20k-line sample of them
        mem = train_or_load(src, tgt, 500, tmp_path / "a", max_input_sentences=sample)
        streamed = prepare_train(parts, tmp_path / "b", 500, max_input_sentences=sample)
        assert streamed.tokenizer.sha256 == mem.sha256
        ids = mem.encode(src[:100])
        assert [streamed.src[i].tolist() for i in range(100)] == ids
        assert len(streamed.src) == len(src) and streamed.counts.kept == len(src)


def test_cached_restart_only_maps(tmp_path: Path, monkeypatch) -> None:
    stem = hand_corpus(tmp_path)
    parts = [resolve_part(tmp_path, str(stem), "en", "de")]
    rules = CleanRules(drop_empty=True)
    first = prepare_train(parts, tmp_path / "cache", 40, rules, n_threads=2)

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached restart read the text again")

    monkeypatch.setattr(prepare_mod, "iter_pairs", no_reading)
    again = prepare_train(parts, tmp_path / "cache", 40, rules)
    assert (
        isinstance(again.src.flat, np.memmap) and again.tokenizer.sha256 == first.tokenizer.sha256
    )
    assert [again.tgt[i].tolist() for i in range(len(again.tgt))] == [
        first.tgt[i].tolist() for i in range(len(first.tgt))
    ]
    assert again.counts.to_dict() == first.counts.to_dict()
    enc_dirs = list((tmp_path / "cache" / "enc").iterdir())
    assert [p.name.startswith(".") for p in enc_dirs] == [False]  # nothing half-written left
    assert json.loads((enc_dirs[0] / "clean.json").read_text())["kept"] == 8


def test_user_corpus_from_files_trains_and_tests(
    tmp_path: Path, tiny_ablation: Path, small_data_root: Path, tmp_cache: Path, capsys
) -> None:
    """A corpus from files only (prefix train with one empty pair dropped, TSV dev, prefix
    test, a named TSV test set) trains, evaluates, and scores its named test set."""
    m30k = small_data_root / "multi30k"
    own = tmp_path / "own"
    src, tgt = load_split(small_data_root, "multi30k", "train")
    write_gz(own / "train.en.gz", [*src, ""])
    write_gz(own / "train.de.gz", [*tgt, "leer"])
    dev_src, dev_tgt = load_split(small_data_root, "multi30k", "dev")
    (own / "dev.tsv").write_text(
        "".join(f"{s}\t{t}\n" for s, t in zip(dev_src, dev_tgt, strict=True))
    )
    for lang in ("en", "de"):
        (own / f"test.{lang}.gz").write_bytes((m30k / f"test_2016_flickr.{lang}.gz").read_bytes())
    (own / "news.tsv").write_text(
        "".join(f"{s}\t{t}\n" for s, t in zip(dev_src[:7], dev_tgt[:7], strict=True))
    )
    out = tmp_path / "run"
    args = ["fit", "--ablation", str(tiny_ablation), "--row", "base", "--out", str(out)]
    args += ["--data.train", str(own / "train"), "--data.dev", str(own / "dev.tsv")]
    args += ["--data.test", str(own / "test"), "--data.tests", f"news={own / 'news.tsv'}"]
    args += ["--data.clean_empty", "true", "--trainer.max_steps", "6"]
    args += ["--trainer.val_check_interval", "null", "--data.data_root", str(tmp_path)]
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 6 and result["dev_ppl"] > 1 and result["test_bleu"] is not None
    removed = {"empty": 1, "too_long": 0, "ratio": 0}
    assert result["train_pairs"] == {"read": 601, "kept": 600, "removed": removed}
    assert len(Path(result["dev_hypotheses"]).read_text().splitlines()) == len(dev_src)
    capsys.readouterr()
    ckpt = result["checkpoint"]
    assert main(["test", "--ckpt", ckpt, "--split", "news", "--beam", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["sentences"] == 7 and 0 <= metrics["bleu"] <= 100
    # Files the run never named, scored by path: the same 7 pairs give the same BLEU.
    (own / "again.tsv").write_text((own / "news.tsv").read_text())
    assert main(["test", "--ckpt", ckpt, "--split", str(own / "again.tsv"), "--beam", "1"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["sentences"] == 7 and again["bleu"] == metrics["bleu"]


def test_part_files() -> None:
    assert Part(Path("a.tsv"), None).files == [Path("a.tsv")]
