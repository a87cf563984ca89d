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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
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
    # The paper's corpus (`lit-transformer download wmt14-en-de` writes it under the data root):
    # Europarl v7 + Common Crawl + News Commentary v9, dev newstest2013, test newstest2014.
    "wmt14-en-de": _simple(
        "wmt14-en-de",
        ("train", "newstest2013", "newstest2014"),
        train="train",
        dev="newstest2013",
        test="newstest2014",
    ),
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


def _user_stems(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Comma-separated (or listed) paths -> absolute stems, so a trial whose working directory
    differs reads the same files."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    stems = tuple(str(Path(p.strip()).expanduser().absolute()) for p in items if p.strip())
    if not stems:
        raise DataError(f"no file given in {spec!r}")
    return stems


def parse_named(spec: str | Mapping[str, str | Sequence[str]] | None) -> dict[str, object]:
    """Named test sets: ``NAME=PATH[,NAME=PATH...]`` or a mapping."""
    if not spec:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    named: dict[str, object] = {}
    for item in spec.split(","):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise DataError(f"data.tests: expected NAME=PATH[,NAME=PATH...], got {item!r}")
        named[name.strip()] = path.strip()
    return named


def has_test(corpus: Corpus, test_split: str = "test") -> bool:
    """Whether a run reads a test split: a named one, or the corpus's ``test`` role if it has
    one (a user corpus may give train and dev files only)."""
    return test_split != "test" or corpus.test is not None


def with_files(
    corpus: Corpus,
    train: str | Sequence[str] | None = None,
    dev: str | Sequence[str] | None = None,
    test: str | Sequence[str] | None = None,
    tests: str | Mapping[str, str | Sequence[str]] | None = None,
) -> Corpus:
    """The corpus with roles (and extra named test sets) taken from files a user names: each a
    path prefix of ``PREFIX.{src,tgt}[.gz]`` pairs or a ``.tsv[.gz]`` file, several joined by
    commas. A corpus given a training file is called ``files``."""
    splits = dict(corpus.splits)
    roles = {"train": corpus.train, "dev": corpus.dev, "test": corpus.test}
    for role, spec in (("train", train), ("dev", dev), ("test", test)):
        if spec:
            splits[role] = _user_stems(spec)
            roles[role] = role
    for name, spec in parse_named(tests).items():
        splits[name] = _user_stems(spec)  # type: ignore[arg-type]
    return Corpus("files" if train else corpus.name, splits, **roles)


def get_corpus(name: str) -> Corpus:
    """Look up a corpus by name."""
    try:
        return CORPORA[name]
    except KeyError:
        raise DataError(f"unknown corpus '{name}' (known: {', '.join(CORPORA)})") from None


def corpus_file(root: Path, stem: str, lang: str) -> Path:
    """Path of one side of a stem: the ``.gz`` file, or the uncompressed one if only that exists.

    A stem is relative to the data root (the named corpora) or absolute (files a user names:
    ``Path(root) / "/abs/x"`` is ``/abs/x``)."""
    gz = Path(root) / f"{stem}.{lang}.gz"
    plain = Path(root) / f"{stem}.{lang}"
    if gz.is_file():
        return gz
    if plain.is_file():
        return plain
    raise DataError(f"{gz}: file not found")


def is_tsv(stem: str) -> bool:
    """A stem naming one tab-separated file (``source<TAB>target`` per line) rather than a
    ``PREFIX.{src,tgt}[.gz]`` pair."""
    return stem.endswith((".tsv", ".tsv.gz"))


@dataclass(frozen=True)
class Part:
    """One file pair (``src``/``tgt``) or one TSV file (``tgt`` is None) of a split."""

    src: Path
    tgt: Path | None

    @property
    def files(self) -> list[Path]:
        return [self.src] if self.tgt is None else [self.src, self.tgt]


def resolve_part(root: Path, stem: str, src_lang: str, tgt_lang: str) -> Part:
    """The files of one stem: a TSV file, or the two sides of a prefix."""
    if is_tsv(stem):
        path = Path(root) / stem
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        return Part(path, None)
    return Part(corpus_file(root, stem, src_lang), corpus_file(root, stem, tgt_lang))


def _lines(path: Path) -> Iterator[str]:
    """Decoded lines (newline stripped, not other whitespace). Bytes are split on b"\n" only,
    not on Unicode line separators, which would silently misalign the two sides."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError(f"{path}:{number}: invalid UTF-8") from None
    except (OSError, EOFError) as err:  # corrupt/truncated gzip
        raise DataError(f"{path}: cannot read ({err})") from None


def _count_rest(lines: Iterator[str]) -> int:
    return sum(1 for _ in lines)


def iter_pairs(part: Part, allow_empty: bool = False) -> Iterator[tuple[str, str]]:
    """Stream the (source, target) pairs of one part, stripped of surrounding whitespace.

    An empty side is an error naming its file and line unless ``allow_empty`` (training data
    that a cleaning rule then counts and drops); so is a TSV line without exactly one tab, and
    two sides of different lengths.
    """
    if part.tgt is None:
        for number, line in enumerate(_lines(part.src), start=1):
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) != 2:
                raise DataError(
                    f"{part.src}:{number}: expected 2 tab-separated columns, got {len(cols)}"
                )
            src, tgt = cols[0].strip(), cols[1].strip()
            if not allow_empty and not (src and tgt):
                raise DataError(f"{part.src}:{number}: empty sentence")
            yield src, tgt
        return
    src_lines, tgt_lines = _lines(part.src), _lines(part.tgt)
    for number, (src, tgt) in enumerate(zip_longest(src_lines, tgt_lines), start=1):
        if src is None or tgt is None:  # one side ended: line number - 1 is its length
            n_src = number - 1 if src is None else number + _count_rest(src_lines)
            n_tgt = number - 1 if tgt is None else number + _count_rest(tgt_lines)
            raise DataError(f"{part.src} has {n_src} lines but {part.tgt} has {n_tgt}")
        src, tgt = src.strip(), tgt.strip()
        if not allow_empty:
            for path, text in ((part.src, src), (part.tgt, tgt)):
                if not text:
                    raise DataError(f"{path}:{number}: empty sentence")
        yield src, tgt


def read_parallel(
    root: Path, stem: str, src_lang: str = "en", tgt_lang: str = "de"
) -> tuple[list[str], list[str]]:
    """Read one stem (``<root>/<stem>.<lang>[.gz]`` for both languages, or a TSV) into lists,
    checking they form clean pairs."""
    src: list[str] = []
    tgt: list[str] = []
    for s, t in iter_pairs(resolve_part(root, stem, src_lang, tgt_lang)):
        src.append(s)
        tgt.append(t)
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


def split_parts(
    root: Path, corpus: Corpus | str, split_or_role: str, src_lang: str, tgt_lang: str
) -> list[Part]:
    """The parts of a split (or role), in order."""
    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    return [resolve_part(root, s, src_lang, tgt_lang) for s in corpus.stems(split_or_role)]


def split_files(
    root: Path, corpus: Corpus | str, split_or_role: str, langs: Iterable[str]
) -> list[Path]:
    """The files a split reads, for provenance hashing."""
    src_lang, tgt_lang = langs
    parts = split_parts(root, corpus, split_or_role, src_lang, tgt_lang)
    return [f for part in parts for f in part.files]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
