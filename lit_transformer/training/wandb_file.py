"""Read a W&B run back from its transaction log (``DIR/wandb/offline-run-*/run-ID.wandb``).

The file is what ``wandb sync`` uploads: a LevelDB-style log of protobuf ``Record`` messages.
A 7-byte header (``:W&B``, magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a
7-byte header (CRC-32, length, type: FULL, or FIRST/MIDDLE/LAST of a record cut across blocks);
a block's tail too short for a chunk header is zero padding. W&B's Python reader left the
SDK when its core moved to Go, so this small one lets tests and tools read a run offline.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every ``wandb_internal_pb2.Record`` in the file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a W&B transaction log")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:  # the rest of the block is padding
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        if zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: bad checksum at byte {pos}")
        pos += HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


@dataclass
class WandbRun:
    """What a run holds once its records are applied: config, summary, tags, job type."""

    run_id: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history_rows: int = 0
    exit_code: int | None = None


def _apply(target: dict[str, Any], items: Any) -> None:
    for item in items:
        keys = list(item.nested_key) or [item.key]
        node = target
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json)


def read_run(path: Path) -> WandbRun:
    run = WandbRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group = record.run.run_id, record.run.run_group
            run.job_type, run.tags = record.run.job_type, list(record.run.tags)
            _apply(run.config, record.run.config.update)
        elif kind == "config":
            _apply(run.config, record.config.update)
        elif kind == "summary":
            _apply(run.summary, record.summary.update)
        elif kind == "history":
            run.history_rows += 1
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    # W&B stores config values as {"value": v} (and some of its own under "_wandb").
    run.config = {
        k: v["value"] if isinstance(v, dict) and set(v) == {"value"} else v
        for k, v in run.config.items()
    }
    return run


def wait_until_written(path: Path, timeout_s: float = 30.0) -> bool:
    """Wait until the log holds its ``exit`` record; whether it does within ``timeout_s``.

    ``wandb.finish()`` returns before W&B's core has written the log out: read at once, it can
    hold no record at all (a few milliseconds later it is whole), so a reader in the same
    process, or a copy made right after, would see a run that never started."""
    deadline = time.monotonic() + timeout_s
    pause = 0.01
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in records(path)):
                return True
        except (OSError, ValueError, struct.error):
            pass  # not there yet, or a chunk half written
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
