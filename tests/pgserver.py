"""A real PostgreSQL server (Debian's ``postgresql``) on a free loopback port, for Dagster's storage.

The cluster lives in a throw-away folder and runs as the ``postgres`` system user when the tests run as
root (PostgreSQL refuses root), as the current user otherwise. Password authentication (scram) is on, as
in a production ``dagster.yaml``; each test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from components import free_port

USER = "dagster"


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    """A running cluster: connection facts and the helpers the tests need."""

    bin_dir: Path
    data_dir: Path
    port: int
    password: str
    as_user: list[str]
    listen: str = "127.0.0.1"

    @property
    def host(self) -> str:
        return self.listen

    def url(self, db: str) -> str:
        return f"postgresql://{USER}:{self.password}@{self.host}:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        """A new empty database owned by the test user; returns its name."""
        self._psql("postgres", f'CREATE DATABASE "{name}" OWNER {USER}')
        return name

    def dagster_yaml(self, db: str, password_env: str = "DAGSTER_PG_PASSWORD") -> str:
        """The ``dagster.yaml`` storage block README documents, pointing at ``db``."""
        return (
            "storage:\n"
            "  postgres:\n"
            "    postgres_db:\n"
            f"      username: {USER}\n"
            f"      password: {{env: {password_env}}}\n"
            f"      hostname: {self.host}\n"
            f"      db_name: {db}\n"
            f"      port: {self.port}\n"
            "      # dagster-postgres speaks psycopg2; SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3\n"
            "      scheme: postgresql+psycopg2\n"
            "telemetry:\n"
            "  enabled: false\n"
        )

    def _psql(self, db: str, sql: str) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run([str(self.bin_dir / "psql"), "-h", self.host, "-p", str(self.port), "-U", USER,
                        "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                       check=True, capture_output=True, text=True, env=env, timeout=60)

    def stop(self) -> None:
        subprocess.run(self.as_user + [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                                       "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres(listen: str = "127.0.0.1", clients: str | None = None) -> PostgresServer:
    """Initialise and start a cluster; raises RuntimeError naming the missing piece when it cannot.

    Args:
        listen: The address to listen on (loopback unless a test's simulated hosts must reach it).
        clients: A CIDR (e.g. ``198.51.100.0/28``) whose clients may log in with the password too.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: `apt-get install -y postgresql` (.ci/run does it)")
    root = Path(tempfile.mkdtemp(prefix="clearml-assets-pg-", dir="/tmp"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"],
                   check=True, capture_output=True, text=True, timeout=120)
    pwfile.unlink()
    if clients:
        with open(data / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write(f"host all all {clients} scram-sha-256\n")
    opts = f"-c listen_addresses={listen} -c port={port} -c unix_socket_directories={root} -c max_connections=200"
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts,
                              "-w", "-t", "120", "start"], check=True, capture_output=True, text=True, timeout=180)
    server = PostgresServer(bin_dir, data, port, password, as_user, listen)
    for _ in range(600):  # pg_ctl -w already waited; this only covers a slow first connection
        try:
            server._psql("postgres", "SELECT 1")
            return server
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"PostgreSQL did not accept connections; log: {(root / 'log').read_text()[-2000:]}")


def waiting_for_lock(url: str, name: str) -> bool:
    """Whether some session waits (not granted) for the advisory lock of ``name`` (:mod:`clearml_assets.locks`)
    in the database at ``url``: the event tests wait for instead of a time."""
    import psycopg2

    from clearml_assets.locks import lock_key

    key = lock_key(name)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1 "
                    "AND ((classid::bigint << 32) | objid::bigint) = %s", (key,))
        return cur.fetchone()[0] > 0
