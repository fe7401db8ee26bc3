"""A private PostgreSQL cluster for tests that stop or restart the database (never the machine's own on 5432).

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``) run as the ``postgres`` user (the server
refuses root) on a cluster made by ``initdb`` in a temporary directory, listening on a free loopback
port with trust authentication. ``stop()`` then ``start()`` keeps the port and the data;
``stop(immediate=True)`` is a crash (no checkpoint: the next start recovers from the WAL).

    with PostgresServer() as server:
        url = server.create_database("citywatch")  # postgresql+psycopg://postgres@127.0.0.1:<port>/citywatch
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from citywatch.local_server import free_port

USER = "postgres"


def postgres_bin_dir() -> Path | None:
    """The newest installed server's binaries, or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name)
    )
    return versions[-1] if versions else None


def unavailable_reason() -> str | None:
    """Why a private cluster cannot run here (for a skip), or None."""
    if postgres_bin_dir() is None:
        return "PostgreSQL server binaries are not installed (apt-get install postgresql)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"there is no {USER!r} user to run PostgreSQL as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != USER:
        return f"running a PostgreSQL cluster needs root (runuser) or the {USER!r} user"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is missing"
    return None


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    data_dir: Path | None = None
    _root: Path | None = None

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None, unavailable_reason()
        command = [str(bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", USER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def _init(self) -> Path:
        # Its own directory under /tmp: pytest's tmp_path is root's and closed to the postgres user.
        self._root = Path(tempfile.mkdtemp(prefix="citywatch-pg-"))
        entry = pwd.getpwnam(USER)
        os.chown(self._root, entry.pw_uid, entry.pw_gid)
        data = self._root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        return data

    def start(self) -> Self:
        if self.data_dir is None:
            self.data_dir = self._init()
        assert self._root is not None
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -k {self._root} "
            "-c fsync=off -c max_connections=200 -c shared_buffers=32MB"
        )
        result = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self._root / "server.log"), "-o", options,
            "-w", "-t", "60", "start", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {result.stdout}{result.stderr}\n{self.log()}")
        return self

    def stop(self, *, immediate: bool = False) -> None:
        if self.data_dir is None or not self.running:
            return
        mode = "immediate" if immediate else "fast"
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, *, immediate: bool = False) -> None:
        self.stop(immediate=immediate)
        self.start()

    @property
    def running(self) -> bool:
        if self.data_dir is None:
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def log(self) -> str:
        path = (self._root / "server.log") if self._root else None
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""

    def create_database(self, name: str) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        self._run("psql", "-h", self.host, "-p", str(self.port), "-U", USER, "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"')  # fmt: skip
        return self.url(name)

    def remove(self) -> None:
        """Stop and delete the cluster."""
        self.stop(immediate=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._root = self.data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()
