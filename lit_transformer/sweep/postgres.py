"""A local PostgreSQL server for sweeps (users and CI): initdb + pg_ctl in a directory.

``lit-transformer postgres start --dir DIR [--port 5433]`` prints the storage URL.
Run as root it uses the ``postgres`` system user, as PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from lit_transformer.config import ConfigError


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise ConfigError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return found


def _run(cmd: list[str], as_postgres: bool) -> subprocess.CompletedProcess:
    if as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def start(directory: Path, port: int = 5433, db: str = "optuna") -> str:
    directory = directory.resolve()
    as_postgres = os.geteuid() == 0
    data = directory / "data"
    if not (data / "PG_VERSION").exists():
        directory.mkdir(parents=True, exist_ok=True)
        if as_postgres:  # the server runs as `postgres`, which must own (and reach) the dir
            shutil.chown(directory, "postgres", "postgres")
        r = _run([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"], as_postgres)
        if r.returncode:
            raise ConfigError(f"initdb failed: {(r.stderr or r.stdout).strip().splitlines()[-1]}")
    opts = f"-h 127.0.0.1 -p {port} -k {directory}"
    r = _run(
        [
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(directory / "server.log"),
            "-w",
            "start",
        ],
        as_postgres,
    )
    if r.returncode and "another server might be running" not in (r.stderr + r.stdout):
        raise ConfigError(f"pg_ctl start failed: see {directory / 'server.log'}")
    _run([_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db], False)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{db}"


def stop(directory: Path) -> None:
    directory = directory.resolve()
    _run([_bin("pg_ctl"), "-D", str(directory / "data"), "-m", "fast", "stop"], os.geteuid() == 0)
