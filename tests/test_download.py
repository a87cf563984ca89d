"""Downloading the paper's corpus: parquet shards in the Hugging Face layout, served from
127.0.0.1 by a handler that redirects like the Hub (``X-Linked-Etag`` on the 302, a CDN ETag
that is no content hash), honours ``Range``, and can cut a transfer or alter its bytes."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import free_port

from lit_transformer.cli.main import main
from lit_transformer.data import download
from lit_transformer.data.corpora import DataError
from lit_transformer.data.download import WMT14_EN_DE

RESOLVE = "/datasets/wmt/wmt14/resolve/main/"
ROWS = {"train": 150 + 120 + 130, "newstest2013": 30, "newstest2014": 33}
SHARD_ROWS = {
    "de-en/train-00000-of-00003.parquet": 150,
    "de-en/train-00001-of-00003.parquet": 120,
    "de-en/train-00002-of-00003.parquet": 130,
    "de-en/validation-00000-of-00001.parquet": 30,
    "de-en/test-00000-of-00001.parquet": 33,
}
SOURCE = dataclasses.replace(WMT14_EN_DE, rows=ROWS)
FIRST = "de-en/train-00000-of-00003.parquet"


def pair(file: str, i: int) -> dict[str, str | None] | None:
    """Row ``i`` of a shard: plain, with line breaks inside, an empty or a missing side."""
    tag = f"{Path(file).name.split('.')[0]} {i}"
    if i % 17 == 3:
        return {"de": f"Zeile\neins {tag}", "en": f"line\r\none {tag}\u2028more"}
    if i % 23 == 5:
        return {"de": "", "en": f"only English {tag}"}
    if i % 29 == 7:
        return {"de": f"nur Deutsch {tag}", "en": None}
    if i == 11:
        return None
    return {"de": f"Satz {tag} – äöü", "en": f"sentence {tag}"}


def one_line(text: str | None) -> str:
    return (text or "").replace("\r\n", " ").replace("\n", " ").replace("\u2028", " ")


def shard_bytes(file: str, rows: int, tmp: Path) -> bytes:
    """A parquet shard like the Hub's: a ``translation`` column of {de, en} structs."""
    kind = pa.struct([("de", pa.string()), ("en", pa.string())])
    table = pa.table({"translation": pa.array([pair(file, i) for i in range(rows)], type=kind)})
    path = tmp / file.replace("/", "_")
    pq.write_table(table, path, row_group_size=40)  # several row groups per shard
    return path.read_bytes()


class Hub:
    """What the handler serves and what it was asked."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop_after: dict[str, int] = {}  # file -> bytes sent before the first cut
        self.corrupt: set[str] = set()  # files served altered (with the original's hash)
        self.ranges = True  # False: ignore Range, answer 200 with the whole file


def handler_for(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hub.requests.append((self.path, self.headers.get("Range")))
            if self.path.startswith(RESOLVE) and self.path[len(RESOLVE) :] in hub.files:
                file = self.path[len(RESOLVE) :]
                sha = hashlib.sha256(hub.files[file]).hexdigest()
                self.send_response(302)
                self.send_header("Location", f"/cdn/{file}")
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/cdn/") and self.path[5:] in hub.files:
                self.serve(self.path[5:])
            else:
                self.send_error(404)

        def serve(self, file: str) -> None:
            data = hub.files[file]
            if file in hub.corrupt:
                data = bytes([data[0] ^ 1]) + data[1:]
            start, asked = 0, self.headers.get("Range")
            if hub.ranges and asked:
                start = int(asked.removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("ETag", f'"{hashlib.sha256(b"cdn" + data).hexdigest()}"')
            self.end_headers()
            cut = hub.drop_after.pop(file, None)
            self.wfile.write(data[start:] if cut is None else data[start : start + cut])
            self.close_connection = True

    return Handler


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Hub, str]]:
    shards = tmp_path / "shards"
    shards.mkdir()
    state = Hub({file: shard_bytes(file, n, shards) for file, n in SHARD_ROWS.items()})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def read_gz(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")[:-1]


def expected_lines(split: str, lang: str) -> list[str]:
    lines = []
    for file in SOURCE.splits[split]:
        for i in range(SHARD_ROWS[file]):
            row = pair(file, i)
            lines.append(one_line(row.get(lang) if row else None))
    return lines


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def test_the_whole_path_writes_line_aligned_gz_files(hub, tmp_cache, tmp_path):
    state, endpoint = hub
    root = tmp_path / "data"
    counts = download.download_parquet_corpus(SOURCE, root, endpoint=endpoint)
    assert counts == ROWS
    out = root / "wmt14-en-de"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}.{lang}.gz" for s in ROWS for lang in ("en", "de")
    )
    for split in ROWS:
        for lang in ("en", "de"):
            assert read_gz(out / f"{split}.{lang}.gz") == expected_lines(split, lang)
    assert "" in read_gz(out / "train.de.gz")  # an empty side stays, as an empty line
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "train.en.gz").stat().st_mode & 0o777 == 0o666 & ~umask  # readable as usual
    cached = SOURCE.cache_path(FIRST, "main")
    assert cached.read_bytes() == state.files[FIRST]
    assert not list(tmp_cache.rglob("*.part"))
    # Everything in place: a second run neither downloads nor rewrites.
    before = len(state.requests)
    assert download.download_parquet_corpus(SOURCE, root, endpoint=endpoint) == ROWS
    assert len(state.requests) == before


def test_an_interrupted_download_resumes_with_a_range_request(hub, tmp_cache):
    state, endpoint = hub
    cut = 1000
    state.drop_after[FIRST] = cut
    url, dest = SOURCE.url(FIRST, endpoint, "main"), SOURCE.cache_path(FIRST, "main")
    with pytest.raises(DataError, match="interrupted.*run again to resume"):
        download.fetch(url, dest, retries=0)
    part = dest.with_name(dest.name + ".part")
    assert part.stat().st_size == cut and not dest.exists()
    state.requests.clear()
    download.fetch(url, dest, retries=0)
    assert (f"/cdn/{FIRST}", f"bytes={cut}-") in state.requests
    assert dest.read_bytes() == state.files[FIRST]
    assert not part.exists()


def test_a_server_that_ignores_range_means_starting_over(hub, tmp_cache):
    state, endpoint = hub
    state.ranges = False
    state.drop_after[FIRST] = 700
    dest = SOURCE.cache_path(FIRST, "main")
    download.fetch(SOURCE.url(FIRST, endpoint, "main"), dest)  # retried within the call
    cdn = [asked for path, asked in state.requests if path.startswith("/cdn/")]
    assert cdn == [None, "bytes=700-"]
    assert dest.read_bytes() == state.files[FIRST]


def test_a_corrupt_download_is_refused_and_leaves_nothing(hub, tmp_cache, tmp_path):
    state, endpoint = hub
    state.corrupt.add(FIRST)
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError) as err:
        download.download_parquet_corpus(SOURCE, root, endpoint=endpoint)
    message = str(err.value)
    good = hashlib.sha256(state.files[FIRST]).hexdigest()
    bad = hashlib.sha256(bytes([state.files[FIRST][0] ^ 1]) + state.files[FIRST][1:]).hexdigest()
    assert "\n" not in message
    assert FIRST.split("/")[1] in message and good in message and bad in message
    assert files_under(tmp_cache) == []
    assert list(root.iterdir()) == []


def test_a_pinned_hash_wins_over_the_servers(hub, tmp_cache):
    _, endpoint = hub
    dest = SOURCE.cache_path(FIRST, "main")
    with pytest.raises(DataError, match=f"expected {'0' * 64}"):
        download.fetch(SOURCE.url(FIRST, endpoint, "main"), dest, "0" * 64)
    assert files_under(tmp_cache) == []


def test_a_wrong_row_count_writes_nothing(hub, tmp_cache, tmp_path):
    _, endpoint = hub
    source = dataclasses.replace(SOURCE, rows={**ROWS, "train": 4_508_785})
    root = tmp_path / "data"
    with pytest.raises(DataError, match="train: .* hold 400 pairs, expected 4,508,785"):
        download.download_parquet_corpus(source, root, endpoint=endpoint)
    assert files_under(root) == []


def test_a_file_that_is_not_parquet_is_one_line(tmp_path):
    bad = tmp_path / "train-00000-of-00003.parquet"
    bad.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DataError, match="not a readable parquet file") as err:
        download.convert_split([bad], tmp_path / "out", "train")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_offline_is_one_line(tmp_cache):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(DataError, match="needs the internet") as err:
        download.fetch(f"{endpoint}/x", tmp_cache / "x")
    assert "\n" not in str(err.value)


def test_the_endpoint_comes_from_the_argument_then_hf_endpoint(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert download.hub_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example/")
    assert download.hub_endpoint() == "https://mirror.example"
    assert download.hub_endpoint("http://127.0.0.1:9") == "http://127.0.0.1:9"
    assert SOURCE.url(FIRST, "https://huggingface.co", "refs/convert/parquet") == (
        "https://huggingface.co/datasets/wmt/wmt14/resolve/refs%2Fconvert%2Fparquet/" + FIRST
    )


def test_only_a_sha256_etag_counts():
    sha = "ab" * 32
    assert download.sha256_of_etag(f'"{sha}"') == sha
    assert download.sha256_of_etag(f'W/"{sha.upper()}"') == sha
    assert download.sha256_of_etag('"0123456789abcdef0123456789abcdef01234567"') is None  # sha1
    assert download.sha256_of_etag(None) is None


def test_the_cli_downloads_and_prints_the_counts(hub, tmp_cache, tmp_path, monkeypatch, capsys):
    _, endpoint = hub
    monkeypatch.setitem(download.PARQUET_SOURCES, "wmt14-en-de", SOURCE)
    root = tmp_path / "data"
    argv = ["download", "wmt14-en-de", "--data-root", str(root), "--endpoint", endpoint]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"files under {root.resolve() / 'wmt14-en-de'}" in out
    for split, pairs in ROWS.items():
        assert f"{split}" in out and f" {pairs} pairs" in out
    assert f"--data.corpus wmt14-en-de --data.data_root {root.resolve()}" in out
    assert f"LIT_TRANSFORMER_DATA={root.resolve()}" in out


def test_the_cli_refuses_an_unknown_corpus_in_one_line(tmp_cache, capsys):
    assert main(["download", "wmt15-en-de"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown corpus 'wmt15-en-de'") and err.count("\n") == 1
