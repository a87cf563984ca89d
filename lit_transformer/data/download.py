"""The paper's corpus from a public source: resumable, checksummed downloads and the conversion
to the data root's layout (``<root>/<corpus>/<split>.<lang>.gz``, see :mod:`corpora`).

A download goes to ``DEST.part`` beside its place in the cache and is resumed from there with an
HTTP ``Range`` request. Only a file whose sha256 matches (a pinned value, else the one the
server states) is renamed into place. A converted split is written to temp files and renamed
into place once both sides are complete and hold the expected number of pairs. An interrupted
or failed run therefore leaves no half-written file anywhere, only a ``.part`` to resume.
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

from lit_transformer.data.corpora import DataError, cache_root, file_sha256

HF_ENDPOINT = "https://huggingface.co"
ENV_HF_ENDPOINT = "HF_ENDPOINT"  # the variable huggingface_hub reads for a mirror
TIMEOUT_S = 60.0  # per connect and per read, not for the whole file
RETRIES = 3  # resumed attempts after a dropped connection, within one call
CHUNK = 1 << 20
MAX_REDIRECTS = 5
USER_AGENT = "lit_transformer"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Every character str.splitlines() breaks on: a sentence must stay one line for any reader.
_LINE_BREAKS = "\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Sources as data.


@dataclass(frozen=True)
class ParquetSource:
    """A corpus published as parquet shards of a Hugging Face dataset, one pair per row in a
    ``column`` of ``{lang: sentence}`` structs.

    ``splits`` maps each split of ``corpus`` (see ``corpora.CORPORA``) to its files in ``repo``,
    read in that order; ``rows`` is the number of pairs each split must have. ``sha256`` pins
    a file's hash where it is known; otherwise the server's ``X-Linked-Etag`` is checked.
    """

    name: str
    corpus: str
    repo: str
    splits: Mapping[str, tuple[str, ...]]
    rows: Mapping[str, int]
    column: str = "translation"
    langs: tuple[str, ...] = ("en", "de")
    sha256: Mapping[str, str] = field(default_factory=dict)

    def url(self, file: str, endpoint: str, revision: str) -> str:
        """The Hub's resolve URL of a file (a revision is a branch, tag or commit)."""
        return f"{endpoint}/datasets/{self.repo}/resolve/{quote(revision, safe='')}/{file}"

    def cache_path(self, file: str, revision: str) -> Path:
        """Where a downloaded file is kept: per repository and revision."""
        rev = quote(revision, safe="")
        return cache_root() / "downloads" / "huggingface" / self.repo / rev / file


# Europarl v7 + Common Crawl + News Commentary v9; dev newstest2013; test the full newstest2014.
WMT14_EN_DE = ParquetSource(
    name="Hugging Face wmt/wmt14 (de-en)",
    corpus="wmt14-en-de",
    repo="wmt/wmt14",
    splits={
        "train": tuple(f"de-en/train-0000{k}-of-00003.parquet" for k in range(3)),
        "newstest2013": ("de-en/validation-00000-of-00001.parquet",),
        "newstest2014": ("de-en/test-00000-of-00001.parquet",),
    },
    rows={"train": 4_508_785, "newstest2013": 3_000, "newstest2014": 3_003},
)

PARQUET_SOURCES: dict[str, ParquetSource] = {WMT14_EN_DE.corpus: WMT14_EN_DE}


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub to download from: the argument, else ``$HF_ENDPOINT``, else huggingface.co."""
    return (endpoint or os.environ.get(ENV_HF_ENDPOINT) or HF_ENDPOINT).rstrip("/")


# --------------------------------------------------------------------------------------------
# Downloading one file.


class _Interrupted(Exception):
    """The transfer stopped before the end; the ``.part`` keeps what arrived."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is followed by hand: the hash is on the Hub's own 302, not on the CDN's answer.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def sha256_of_etag(value: str | None) -> str | None:
    """The sha256 an (``X-Linked-``)``ETag`` header states, or None if it is not one.

    The Hub sends an LFS file's sha256 as its ``X-Linked-Etag``; other ETags (a git blob's
    sha1, a CDN's own tag) are not a content hash of the file and are ignored.
    """
    if not value:
        return None
    tag = value.strip().removeprefix("W/").strip('"').lower()
    return tag if _SHA256.fullmatch(tag) else None


def _open(url: str, offset: int, timeout: float) -> tuple[Any, str | None]:
    """GET ``url`` from byte ``offset``, following redirects: (response, stated sha256).

    The response is None when the server has nothing past ``offset`` (416: the ``.part`` is
    complete already). Only the Hub's ``X-Linked-Etag`` on any hop, or the ``ETag`` of a file
    served without a redirect, count as the file's hash.
    """
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    stated = None
    for hop in range(MAX_REDIRECTS + 1):
        try:
            response = _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as err:
            stated = stated or sha256_of_etag(err.headers.get("X-Linked-Etag"))
            location = err.headers.get("Location")
            err.close()
            if err.code in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if urlsplit(url).scheme not in ("http", "https"):
                    raise DataError(f"{url}: redirected to a non-HTTP URL") from None
                continue
            if err.code == 416 and offset:
                return None, stated
            if err.code >= 500:  # the server or its CDN is busy: worth another try
                raise _Interrupted(f"HTTP {err.code} {err.reason}") from None
            raise DataError(f"{url}: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError)):
                raise _Interrupted(str(err.reason)) from None
            raise DataError(
                f"cannot reach {url} ({err.reason}); downloading needs the internet "
                f"(or a mirror: --endpoint or ${ENV_HF_ENDPOINT})"
            ) from None
        own = response.headers.get("X-Linked-Etag") or (
            response.headers.get("ETag") if hop == 0 else None
        )
        return response, stated or sha256_of_etag(own)
    raise DataError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _resumed_at(response: Any, offset: int) -> bool:
    """Whether a 206 response continues the file at ``offset``."""
    content_range = response.headers.get("Content-Range") or ""
    return bool(re.match(rf"bytes {offset}-\d+/", content_range))


def _transfer(url: str, part: Path, timeout: float) -> str | None:
    """Append the rest of ``url`` to ``part`` (or write it anew): the sha256 the server states."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response, stated = _open(url, offset, timeout)
    except (OSError, http.client.HTTPException) as err:  # reset or timed out before the body
        raise _Interrupted(f"{type(err).__name__}: {err}") from None
    if response is None:
        return stated
    with response:
        if response.status == 206 and not _resumed_at(response, offset):
            part.unlink(missing_ok=True)  # not the range asked for: start over
            raise _Interrupted(f"bytes={offset}- was answered with another range")
        if response.status != 206:
            offset = 0  # a 200 is the whole file (a server may ignore Range): start over
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        received = offset
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "ab" if offset else "wb") as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _Interrupted(f"{type(err).__name__}: {err}") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
    if expected is not None and received < expected:
        raise _Interrupted(f"connection closed at byte {received:,} of {expected:,}")
    return stated


def fetch(
    url: str,
    dest: Path,
    sha256: str | None = None,
    *,
    timeout: float = TIMEOUT_S,
    retries: int = RETRIES,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``; verify, then rename into place.

    The expected hash is ``sha256`` if given, else the one the server states (a file neither
    names is placed unverified; the Hub states one for every LFS file). A mismatch
    deletes the ``.part`` and raises :class:`DataError`; a transfer still cut off after
    ``retries`` resumed attempts keeps the ``.part`` for the next call. An existing ``dest``
    was verified when it was placed, and is kept.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            stated = _transfer(url, part, timeout)
            break
        except _Interrupted as err:
            if attempt == retries:
                raise DataError(
                    f"{dest.name}: download from {url} interrupted ({err}); "
                    f"run again to resume from {part}"
                ) from None
            time.sleep(attempt)  # the first retry at once, then back off
    expected = (sha256 or stated or "").lower() or None
    if expected is not None:
        got = file_sha256(part)
        if got != expected:
            part.unlink(missing_ok=True)
            raise DataError(
                f"{dest.name}: sha256 {got} does not match the expected {expected} "
                "(download deleted; run again to fetch it anew)"
            )
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Conversion to the data root's layout.


def _struct_fields(path: Path, column: str, langs: tuple[str, ...]) -> list[int]:
    """Indices of each language inside ``column``'s struct type, or a DataError naming them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable parquet file ({_first_line(err)})") from None
    kind = schema.field(column).type if column in schema.names else None
    if kind is None or not pa.types.is_struct(kind):
        raise DataError(f"{path}: no column '{column}' of {{{', '.join(langs)}}} structs")
    missing = [lang for lang in langs if kind.get_field_index(lang) < 0]
    if missing:
        raise DataError(f"{path}: column '{column}' has no field {', '.join(missing)}")
    return [kind.get_field_index(lang) for lang in langs]


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _lines(column: Any, index: int) -> bytes:
    """One language of a batch as UTF-8 lines: a null is an empty line, a break is a space."""
    import pyarrow.compute as pc

    text = pc.struct_field(column, [index])
    text = pc.fill_null(pc.replace_substring_regex(text, _LINE_BREAKS, " "), "")
    return "".join(f"{line}\n" for line in text.to_pylist()).encode("utf-8")


def _gzip_temp(directory: Path, name: str) -> tuple[Path, IO[bytes], gzip.GzipFile]:
    """A temp file beside ``directory/name`` and a gzip writer on it (no name, no mtime in
    the header, so the same pairs always give the same bytes and data hash)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.chmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared data root's files
    raw = os.fdopen(fd, "wb")
    gz = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    return Path(tmp), raw, gz


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def convert_split(
    files: list[Path],
    out_dir: Path,
    split: str,
    *,
    column: str = "translation",
    langs: tuple[str, ...] = ("en", "de"),
    rows: int | None = None,
) -> int:
    """Write ``out_dir/<split>.<lang>.gz`` for each language from parquet ``files``: the pairs.

    The files are streamed one batch at a time (never the whole split in memory). With
    ``rows`` given, a different number of pairs is a DataError and nothing is written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [_struct_fields(path, column, langs) for path in files]
    found = sum(pq.ParquetFile(path).metadata.num_rows for path in files)
    if rows is not None and found != rows:
        names = ", ".join(path.name for path in files)
        raise DataError(f"{split}: {names} hold {found:,} pairs, expected {rows:,}")
    out_dir.mkdir(parents=True, exist_ok=True)
    temps = [_gzip_temp(out_dir, f"{split}.{lang}.gz") for lang in langs]
    try:
        pairs = 0
        for path, indices in zip(files, fields, strict=True):
            try:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=[column]):
                    pairs += batch.num_rows
                    for (_, _, gz), index in zip(temps, indices, strict=True):
                        gz.write(_lines(batch.column(0), index))
            except pa.ArrowException as err:
                raise DataError(f"{path}: cannot read ({_first_line(err)})") from None
        for _, raw, gz in temps:
            gz.close()
            raw.close()
        if pairs != found:
            raise DataError(f"{split}: read {pairs:,} pairs, the files' metadata says {found:,}")
        for (tmp, _, _), lang in zip(temps, langs, strict=True):
            os.replace(tmp, out_dir / f"{split}.{lang}.gz")
    finally:
        for tmp, raw, gz in temps:
            gz.close()
            raw.close()
            tmp.unlink(missing_ok=True)
    return pairs


def count_lines(path: Path) -> int:
    """Lines of a (gzip) text file: the pairs of one side of a split."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(CHUNK), b""))


def _split_done(out_dir: Path, split: str, langs: tuple[str, ...]) -> bool:
    return all((out_dir / f"{split}.{lang}.gz").is_file() for lang in langs)


def download_parquet_corpus(
    source: ParquetSource = WMT14_EN_DE,
    data_root: Path | None = None,
    *,
    endpoint: str | None = None,
    revision: str = "main",
    timeout: float = TIMEOUT_S,
    retries: int = RETRIES,
    log: Log | None = None,
) -> dict[str, int]:
    """Download a parquet source and write its corpus under ``data_root``: pairs per split.

    ``data_root`` defaults to the download cache that ``resolve_data_root`` falls back to.
    Splits already in place are kept. Every file is downloaded (and verified) before the
    first split is written, so a failed download leaves nothing under the data root.
    """
    data_root = Path(data_root) if data_root is not None else cache_root() / "data"
    out_dir = data_root / source.corpus
    todo = [s for s in source.splits if not _split_done(out_dir, s, source.langs)]
    base = hub_endpoint(endpoint)
    local: dict[str, list[Path]] = {}
    for split in todo:
        local[split] = []
        for file in source.splits[split]:
            dest = source.cache_path(file, revision)
            if log and not dest.is_file():
                log(f"downloading {source.url(file, base, revision)}")
            fetch(
                source.url(file, base, revision),
                dest,
                source.sha256.get(file),
                timeout=timeout,
                retries=retries,
            )
            local[split].append(dest)
    created = not out_dir.exists()
    written: dict[str, int] = {}
    try:
        for split in todo:
            if log:
                log(f"writing {out_dir / split}.{{{','.join(source.langs)}}}.gz")
            written[split] = convert_split(
                local[split],
                out_dir,
                split,
                column=source.column,
                langs=source.langs,
                rows=source.rows.get(split),
            )
    finally:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
    return {
        s: written[s] if s in written else count_lines(out_dir / f"{s}.{source.langs[0]}.gz")
        for s in source.splits
    }
