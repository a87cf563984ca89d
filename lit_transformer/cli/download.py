"""``download CORPUS``: fetch a corpus into a data root (needs the internet).

``wmt14-en-de``, the paper's corpus, comes as parquet shards from the Hugging Face Hub
(resumable and checksummed, ``data/download.py``); the small corpora (multi30k, wmt) as their
public text files (``corpora.download_corpus``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

SUMMARY = "download a corpus (wmt14-en-de: the paper's) into a data root"


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("corpus", metavar="CORPUS", help="wmt14-en-de, multi30k or wmt")
    p.add_argument(
        "--data-root",
        metavar="DIR",
        help="where the corpus goes (default: the download cache, $LIT_TRANSFORMER_CACHE/data)",
    )
    p.add_argument(
        "--endpoint",
        metavar="URL",
        help="Hugging Face Hub or mirror (default: $HF_ENDPOINT, else https://huggingface.co)",
    )
    p.add_argument("--revision", metavar="REV", help="dataset branch, tag or commit (default main)")


def run(args: argparse.Namespace) -> int:
    from lit_transformer.config import ConfigError
    from lit_transformer.data import corpora, download

    corpus = corpora.get_corpus(args.corpus)  # an unknown name is one line
    root = Path(args.data_root).expanduser() if args.data_root else corpora.cache_root() / "data"
    source = download.PARQUET_SOURCES.get(corpus.name)
    if source is not None:
        counts = download.download_parquet_corpus(
            source,
            root,
            endpoint=args.endpoint,
            revision=args.revision or "main",
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    else:
        if args.endpoint or args.revision:
            known = ", ".join(download.PARQUET_SOURCES)
            raise ConfigError(f"--endpoint and --revision apply to {known} only")
        corpora.download_corpus(corpus.name, root)
        counts = {
            split: sum(download.count_lines(root / f"{stem}.en.gz") for stem in stems)
            for split, stems in corpus.splits.items()
        }
    root = root.resolve()
    where = shlex.quote(str(root))
    print(f"{corpus.name}: files under {root / corpus.name}")
    width = max(map(len, counts))
    for split, pairs in counts.items():
        print(f"  {split:<{width}}  {pairs:>11,} pairs")
    verb = "train on it" if corpus.train else "use it"
    print(f"{verb}: lit-transformer fit --data.corpus {corpus.name} --data.data_root {where} …")
    print(f"  (or export LIT_TRANSFORMER_DATA={where} and pass --data.corpus {corpus.name})")
    return 0
