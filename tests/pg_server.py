"""A throwaway PostgreSQL server for tests and benchmarks (Debian's `postgresql` package; nothing else).

`initdb` a cluster in a fresh temporary directory, start it with `pg_ctl` on a free port of 127.0.0.1 only, and
stop it (and remove the directory) afterwards. Connections over TCP need a password (scram-sha-256), so tests can
check wrong passwords and that the password never shows; the Unix socket in the directory trusts the owner.
`initdb` refuses to run as root: as root, the directory is handed to the `postgres` user and the server runs as it
(RECIPES.md, "A real PostgreSQL server in tests and CI"). Importable as `pg_server` (tests/ is on sys.path).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "clv"
PASSWORD = "s3cret-Pa55-7f1c"  # distinctive, so a leak is easy to find in any output
DATABASE = "shop"


def find_bin_dir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


MISSING_REASON = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: `apt-get install -y postgresql` (.ci/run installs them)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    bin_dir: Path
    directory: Path
    port: int
    as_postgres: bool  # run the server as the `postgres` user (we are root)

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def url_with(self, *, password: str | None = PASSWORD, port: int | None = None, database: str = DATABASE) -> str:
        auth = f"{USER}:{password}" if password is not None else USER
        return f"postgresql://{auth}@127.0.0.1:{port or self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in command)]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def psql(self, sql: str, database: str = DATABASE) -> str:
        """Run SQL as the superuser over the Unix socket (no password); returns psql's output."""
        done = self._run(
            "psql",
            "-h",
            str(self.directory),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-A",
            "-t",
            "-c",
            sql,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def start(bin_dir: Path | None = None) -> PgServer:
    """A running server with database `shop` owned by `clv` (password PASSWORD). Raises RuntimeError on failure."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(MISSING_REASON)
    as_postgres = os.geteuid() == 0
    directory = Path(tempfile.mkdtemp(prefix="clv-pg-"))
    if as_postgres:
        shutil.chown(directory, "postgres", "postgres")
    server = PgServer(bin_dir, directory, _free_port(), as_postgres)
    data = directory / "data"
    pwfile = directory / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        server._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C",
        )
        for attempt in range(3):
            options = (
                f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB"
            )
            done = server._run(
                "pg_ctl",
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(directory / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if done.returncode == 0:
                break
            if attempt == 2:  # the port may have been taken between choosing and binding it
                log = (directory / "server.log").read_text() if (directory / "server.log").exists() else ""
                raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log[-2000:]}")
            server.port = _free_port()
            time.sleep(0.5)
        server.psql(f"create role {USER} login password '{PASSWORD}'", database="postgres")
        server.psql(f"create database {DATABASE} owner {USER}", database="postgres")
    except BaseException:
        server.stop()
        raise
    return server
