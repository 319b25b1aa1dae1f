"""Locks that hold across machines: PostgreSQL advisory locks, or file locks where one machine is all there is.

Two things must never run twice at once for the same object: restoring a source task into an account (two
restores would both create a copy) and exporting a task or project into an export root (two exports would
publish over each other). On one machine a lock file does; across machines only a store every host shares can.

:class:`ClearMLPostgresLocks` takes a session-level ``pg_advisory_lock`` on a connection of its own for as long
as the block runs. PostgreSQL releases it when the block ends or when the holder's connection dies, so a host
that is killed (or loses power: the session sets TCP keepalives) never leaves a lock behind and no lease or
timer decides who may go on. The Dagster assets take the PostgreSQL database of the Dagster instance they run
in (:func:`locks_for_instance`), so a deployment on ``dagster-postgres`` needs no extra setting;
``CLEARML_ASSETS_LOCK_URL`` (``postgresql://user:password@host:port/db``) names another database, and is how the
``clearml-assets restore`` command shares the locks of a distributed deployment. Without either (SQLite storage,
the CLI on a laptop) :class:`ClearMLFileLocks` locks files in the temp folder: correct on one machine only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any, Iterator

from .errors import ClearMLAssetsError, ClearMLConfigError

LOCK_URL_ENV = "CLEARML_ASSETS_LOCK_URL"
DEFAULT_WAIT_SECONDS = 6 * 3600
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
# the server's side: a client that vanished (its host gone) is dropped, and its locks released, within ~25 s
_SERVER_KEEPALIVE = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5",
                     "SET tcp_keepalives_count = 3")


class ClearMLLockError(ClearMLAssetsError):
    """A shared lock could not be taken (the database is unreachable, or the wait exceeded its bound)."""


def lock_key(name: str) -> int:
    """The signed 64-bit advisory lock key of ``name`` (the first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def export_lock_name(root: Any, account: str, kind: str, obj_id: str) -> str:
    """The lock serializing exports of one task or project (``kind``: ``tasks``/``projects``) into ``root``."""
    return f"clearml_assets:export:{str(root).rstrip('/')}|{account}|{kind}|{obj_id}"


class ClearMLLocks:
    """Named locks; :meth:`hold` is a context manager that blocks until the lock is free."""

    shared: bool = False

    def hold(self, name: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the locks live (no secret)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the locks keep open between holds (nothing for file locks)."""

    def __enter__(self) -> "ClearMLLocks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ClearMLFileLocks(ClearMLLocks):
    """File locks in ``folder`` (default: ``clearml_assets/locks`` in the temp folder): one machine only.

    Args:
        folder: Where the lock files go.
    """

    def __init__(self, folder: Path | str | None = None):
        self.folder = Path(folder) if folder else Path(tempfile.gettempdir()) / "clearml_assets" / "locks"

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / f"{lock_key(name) & (2**64 - 1):016x}.lock")):
            yield

    def describe(self) -> str:
        return f"lock files in {self.folder} (this machine only)"


class ClearMLPostgresLocks(ClearMLLocks):
    """Session-level PostgreSQL advisory locks, on one connection per thread kept until :meth:`close`.

    A run exports thousands of tasks, each under its lock: a connection per lock would start a PostgreSQL backend
    for each (a process fork, authentication). Each thread keeps one connection instead and takes and releases
    its locks on it; a lock is still a session lock of a connection that dies with its host. A connection found
    broken is replaced before the next lock.

    Args:
        url: ``postgresql://user:password@host:port/db`` (a SQLAlchemy ``postgresql+psycopg2://`` URL works too).
        wait_seconds: Longest wait for a lock another process holds (PostgreSQL's ``lock_timeout``).
        connect_timeout: Seconds to reach the database.
    """

    shared = True

    def __init__(self, url: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS, connect_timeout: int = 10):
        self.url = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", str(url))
        if not self.url.startswith(("postgresql://", "postgres://")):
            raise ClearMLConfigError(f"{LOCK_URL_ENV} must be a postgresql:// URL, not {_safe(self.url)!r}")
        self.wait_seconds = float(wait_seconds)
        self.connect_timeout = int(connect_timeout)
        self._local = threading.local()
        self._opened: list[Any] = []
        self._closer = weakref.finalize(self, _close_all, self._opened)

    def describe(self) -> str:
        return f"PostgreSQL advisory locks at {_safe(self.url)}"

    def close(self) -> None:
        """Close every connection this object opened (their locks, if any were still held, are released)."""
        self._closer()

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        key = lock_key(name)
        conn = self._acquire(name, key)
        try:
            yield
        except BaseException:
            self._release(conn, key)
            raise
        if not self._release(conn, key):
            raise ClearMLLockError(f"the lock {name!r} was lost while held (its connection to "
                                   f"{_safe(self.url)} was reset); run again to check the result")

    def _acquire(self, name: str, key: int):
        """Take the lock on this thread's connection (a new one when the kept one is broken)."""
        import psycopg2

        for attempt in (1, 2):
            conn = self._thread_connection(name)
            try:
                self._lock(conn, name, key)
                return conn
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._drop(conn)
                if attempt == 2:
                    raise ClearMLLockError(f"cannot take the lock {name!r}: the connection to {self.describe()} "
                                           "broke twice; check the database") from None
        raise AssertionError("unreachable")

    def _release(self, conn, key: int) -> bool:
        """Unlock; False when the lock was not held any more (the connection was reset and is dropped)."""
        import psycopg2

        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
                return bool(cur.fetchone()[0])
        except psycopg2.Error:
            self._drop(conn)
            return False

    def _thread_connection(self, name: str):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect(name)
            self._opened.append(conn)
        return conn

    def _drop(self, conn) -> None:
        with contextlib.suppress(Exception):
            conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _connect(self, name: str):
        import psycopg2

        try:
            conn = psycopg2.connect(self.url, connect_timeout=self.connect_timeout,
                                    application_name="clearml_assets lock", **_KEEPALIVE)
        except psycopg2.Error as exc:
            raise ClearMLLockError(f"cannot take the lock {name!r}: {self.describe()} cannot be reached "
                                   f"({_first_line(exc)}); check the database or {LOCK_URL_ENV}") from None
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement in _SERVER_KEEPALIVE:
                cur.execute(statement)
            cur.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(self.wait_seconds * 1000)}ms",))
        return conn

    def _lock(self, conn, name: str, key: int) -> None:
        import psycopg2.errors

        with conn.cursor() as cur:
            try:
                cur.execute("SELECT pg_advisory_lock(%s)", (key,))
            except psycopg2.errors.LockNotAvailable:
                holder = _holder(conn, key)
                raise ClearMLLockError(f"waited {self.wait_seconds:.0f}s for the lock {name!r} ({self.describe()})"
                                       f", held by {holder}; it is released when that process ends or its "
                                       "connection drops") from None


def _close_all(connections: list[Any]) -> None:
    while connections:
        with contextlib.suppress(Exception):
            connections.pop().close()


def _holder(conn, key: int) -> str:
    """Who holds advisory lock ``key`` (client address and backend pid), for the error message."""
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT a.client_addr::text, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND "
                    "((l.classid::bigint << 32) | l.objid::bigint) = %s", (key,))
        row = cur.fetchone()
    return f"a session from {row[0] or 'a local socket'} (backend pid {row[1]})" if row else "another session"


def _safe(url: str) -> str:
    return re.sub(r"(?<=://)([^:/@]*)(:[^@]*)?@", r"\1@", url)


def _first_line(exc: BaseException) -> str:
    return _safe(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def locks_from_env(environ: dict[str, str] | None = None) -> ClearMLLocks:
    """``CLEARML_ASSETS_LOCK_URL``'s PostgreSQL locks, else file locks (one machine)."""
    url = (os.environ if environ is None else environ).get(LOCK_URL_ENV, "").strip()
    return ClearMLPostgresLocks(url) if url else ClearMLFileLocks()


def instance_postgres_url(instance: Any) -> str | None:
    """The PostgreSQL URL of a Dagster instance's run storage (``dagster-postgres``), else None."""
    try:
        storage = instance.run_storage
    except Exception:  # noqa: BLE001 - an instance without run storage (a test double) has no database
        return None
    url = getattr(storage, "postgres_url", None)
    return str(url) if url else None


def locks_for_instance(instance: Any) -> ClearMLLocks:
    """The locks of a Dagster run: ``CLEARML_ASSETS_LOCK_URL``, else the instance's own PostgreSQL database
    (every host of a deployment shares it), else file locks (SQLite storage: one machine)."""
    if os.environ.get(LOCK_URL_ENV, "").strip():
        return locks_from_env()
    url = instance_postgres_url(instance) if instance is not None else None
    return ClearMLPostgresLocks(url) if url else ClearMLFileLocks()


__all__ = ["ClearMLFileLocks", "ClearMLLockError", "ClearMLLocks", "ClearMLPostgresLocks", "LOCK_URL_ENV",
           "export_lock_name", "lock_key", "locks_for_instance", "locks_from_env"]
