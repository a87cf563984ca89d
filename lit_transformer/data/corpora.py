"""Parallel corpora: where they live, which files form a split, and how to read them safely.

Layout under the data root: ``<root>/<corpus>/<split>.<lang>.gz`` (gzip, UTF-8, one sentence per
line, the two languages line-aligned). Every problem with the data raises :class:`DataError` with a
one-line message naming the file (and line), so a CLI can print it without a traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lit_transformer.errors import UserError

ENV_DATA = "LIT_TRANSFORMER_DATA"
ENV_CACHE = "LIT_TRANSFORMER_CACHE"
ROLES = ("train", "dev", "test")


class DataError(UserError):
    """A problem with the data (missing/malformed file, unknown corpus); message is one line."""


def cache_root() -> Path:
    """Root of all on-disk caches: ``$LIT_TRANSFORMER_CACHE`` or ``~/.cache/lit_transformer``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lit_transformer"


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """Find the data root: argument, ``$LIT_TRANSFORMER_DATA``, ``../shared/data``, download cache.

    An explicitly given location (argument or env var) that does not exist is an error rather
    than silently falling back, so a typo never trains on the wrong data.
    """
    for explicit, what in ((data_root, "--data-root"), (os.environ.get(ENV_DATA), ENV_DATA)):
        if explicit:
            path = Path(explicit).expanduser()
            if not path.is_dir():
                raise DataError(f"{path}: data root given by {what} does not exist")
            return path.resolve()
    for candidate in (Path.cwd().parent / "shared" / "data", cache_root() / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    raise DataError(
        "no data root found: pass --data-root DIR or set LIT_TRANSFORMER_DATA "
        f"(looked in ../shared/data and {cache_root() / 'data'})"
    )


@dataclass(frozen=True)
class Corpus:
    """A named corpus: split name -> file stems (relative to the data root) plus role mapping.

    A split with several stems is the concatenation of those files (used by composite corpora).
    """

    name: str
    splits: dict[str, tuple[str, ...]]
    train: str | None = None
    dev: str | None = None
    test: str | None = None

    def split_for(self, role_or_split: str) -> str:
        """Map a role (train/dev/test) or a split name to a split name of this corpus."""
        if role_or_split in ROLES:
            split = getattr(self, role_or_split)
            if split is None:
                raise DataError(f"corpus '{self.name}' has no {role_or_split} split")
            return split
        if role_or_split in self.splits:
            return role_or_split
        known = ", ".join([*ROLES, *self.splits])
        raise DataError(f"corpus '{self.name}' has no split '{role_or_split}' (known: {known})")

    def stems(self, role_or_split: str) -> tuple[str, ...]:
        """File stems (relative to the data root) of a role or split."""
        return self.splits[self.split_for(role_or_split)]


_MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr")
WMT_SETS = (
    "news-test2008",
    "newssyscomb2009",
    *(f"newstest{year}" for year in range(2009, 2021)),
)
_WMT_HELD_OUT = ("newstest2013", "newstest2014")  # the paper's dev and test sets


def _simple(name: str, splits: Iterable[str], **roles: str | None) -> Corpus:
    return Corpus(name, {s: (f"{name}/{s}",) for s in splits}, **roles)


CORPORA: dict[str, Corpus] = {
    "multi30k": _simple(
        "multi30k", _MULTI30K_SPLITS, train="train", dev="val", test="test_2016_flickr"
    ),
    "wmt": _simple("wmt", WMT_SETS, dev="newstest2013", test="newstest2014"),
    "tatoeba": _simple("tatoeba", ("train", "test"), train="train", dev="test", test="test"),
    "ddtp": _simple("ddtp", ("train",), train="train"),
    # Stand-in for WMT14 training data: everything except the paper's dev/test years.
    "wmt-composite": Corpus(
        "wmt-composite",
        {
            "train": (
                "tatoeba/train",
                "multi30k/train",
                "ddtp/train",
                *(f"wmt/{s}" for s in WMT_SETS if s not in _WMT_HELD_OUT),
            ),
            "newstest2013": ("wmt/newstest2013",),
            "newstest2014": ("wmt/newstest2014",),
        },
        train="train",
        dev="newstest2013",
        test="newstest2014",
    ),
}


def get_corpus(name: str) -> Corpus:
    """Look up a corpus by name."""
    try:
        return CORPORA[name]
    except KeyError:
        raise DataError(f"unknown corpus '{name}' (known: {', '.join(CORPORA)})") from None


def corpus_file(root: Path, stem: str, lang: str) -> Path:
    """Path of one side of a stem: the ``.gz`` file, or the uncompressed one if only that exists."""
    gz = Path(root) / f"{stem}.{lang}.gz"
    plain = Path(root) / f"{stem}.{lang}"
    if gz.is_file():
        return gz
    if plain.is_file():
        return plain
    raise DataError(f"{gz}: file not found")


def _read_lines(path: Path) -> list[str]:
    """Read and strip every line; bytes are split on b"\\n" only (not Unicode line separators,
    which would silently misalign the two sides)."""
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    lines.append(raw.decode("utf-8").strip())
                except UnicodeDecodeError:
                    raise DataError(f"{path}:{number}: invalid UTF-8") from None
    except (OSError, EOFError) as err:  # corrupt/truncated gzip
        raise DataError(f"{path}: cannot read ({err})") from None
    return lines


def read_parallel(
    root: Path, stem: str, src_lang: str = "en", tgt_lang: str = "de"
) -> tuple[list[str], list[str]]:
    """Read ``<root>/<stem>.<lang>.gz`` for both languages and check they form clean pairs."""
    src_path, tgt_path = corpus_file(root, stem, src_lang), corpus_file(root, stem, tgt_lang)
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}")
    for path, lines in ((src_path, src), (tgt_path, tgt)):
        for number, line in enumerate(lines, start=1):
            if not line:
                raise DataError(f"{path}:{number}: empty sentence")
    return src, tgt


def load_split(
    root: Path, corpus: Corpus | str, split_or_role: str, src_lang: str = "en", tgt_lang: str = "de"
) -> tuple[list[str], list[str]]:
    """Read every stem of a split (or role) and concatenate them in registry order."""
    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    src: list[str] = []
    tgt: list[str] = []
    for stem in corpus.stems(split_or_role):
        s, t = read_parallel(root, stem, src_lang, tgt_lang)
        src += s
        tgt += t
    return src, tgt


def split_files(
    root: Path, corpus: Corpus | str, split_or_role: str, langs: Iterable[str]
) -> list[Path]:
    """The files a split reads, for provenance hashing."""
    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    return [corpus_file(root, s, lang) for s in corpus.stems(split_or_role) for lang in langs]


def hash_files(paths: Iterable[Path]) -> str:
    """sha256 over the names (relative order matters) and bytes of files."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Downloading (for users with internet; the project's machines read a local copy instead).

_MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
# OPUS-MT-testsets keeps the WMT sets as *plain text* named <set>.<lang> under testsets/en-de
# (e.g. testsets/en-de/news-test2008.en); download() gzips them to match the local layout.
_OPUS_URL = "https://raw.githubusercontent.com/Helsinki-NLP/OPUS-MT-testsets/master/testsets/en-de"

SOURCES: dict[str, str] = {
    **{
        f"multi30k/{s}.{lang}.gz": f"{_MULTI30K_URL}/{s}.{lang}.gz"
        for s in _MULTI30K_SPLITS
        for lang in ("en", "de")
    },
    **{f"wmt/{s}.{lang}.gz": f"{_OPUS_URL}/{s}.{lang}" for s in WMT_SETS for lang in ("en", "de")},
}

# Corpora built by a filtering/alignment step (see the data README): no single file to fetch.
NO_URL: dict[str, str] = {
    "tatoeba": "tatoeba/train is the manythings.org deu-eng export minus test-set overlaps, "
    "built offline",
    "ddtp": "ddtp is sentence-split from Debian Translation-en/-de files, built offline",
}


def _fetch_text(url: str) -> bytes:
    """Fetch a URL and return gzip bytes of valid UTF-8 text (gzipping plain text)."""
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (http/file only)
        payload = response.read()
    is_gz = payload[:2] == b"\x1f\x8b"
    text = gzip.decompress(payload) if is_gz else payload
    text.decode("utf-8")  # raises UnicodeDecodeError on a bad download (e.g. an HTML error page)
    return payload if is_gz else gzip.compress(text, mtime=0)


def download(
    relpaths: Iterable[str], dest_root: Path | None = None, base_urls: Mapping[str, str] = SOURCES
) -> list[Path]:
    """Download data files (relative paths like ``multi30k/train.en.gz``) under ``dest_root``.

    Defaults to the download cache that :func:`resolve_data_root` falls back to. Each file goes
    to a temp file in the destination folder and is renamed into place only once complete and
    verified, so an interrupted or failed download never leaves a half-written file. Existing
    files are kept.
    """
    dest_root = Path(dest_root) if dest_root is not None else cache_root() / "data"
    written = []
    for rel in relpaths:
        dest = dest_root / rel
        if dest.is_file():
            written.append(dest)
            continue
        if rel not in base_urls:
            reason = NO_URL.get(rel.split("/", 1)[0], "no download source is known for it")
            raise DataError(f"{rel}: cannot download ({reason}); copy it into {dest_root}")
        url = base_urls[rel]
        try:
            data = _fetch_text(url)
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise DataError(f"{rel}: download from {url} failed ({err})") from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(dest)
    return written


def download_corpus(name: str, dest_root: Path | None = None) -> list[Path]:
    """Download every file of a corpus (both languages, all splits)."""
    corpus = get_corpus(name)
    stems = sorted({stem for stems in corpus.splits.values() for stem in stems})
    return download([f"{s}.{lang}.gz" for s in stems for lang in ("en", "de")], dest_root)
