"""Locks shared by every host (clearml_assets.locks): PostgreSQL advisory locks, released when the holder ends
or dies, and the restore's double-copy protection built on them.

Every wait here is for an event (a row in ``pg_locks``, a thread finishing), bounded only so that a broken
case cannot hang the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.local_server import LocalServer
from clearml_assets.locks import (ClearMLFileLocks, ClearMLLockError, ClearMLPostgresLocks,
                                  locks_for_instance)
from clearml_assets.restore.engine import INCOMPLETE_TAG, TaskRestorer, provenance_tag, restore_lock_name
from pgserver import waiting_for_lock
from seeding import DemoSpec, RawSeeder, client_of

REPO = Path(__file__).resolve().parents[1]
SPEC = DemoSpec(scalar_series=1, points_per_series=20, log_lines=5, artifacts=1, artifact_bytes=2048, plots=0,
                debug_images=0)


@pytest.fixture
def lock_url(postgres_server) -> str:
    return postgres_server.url(postgres_server.create_database(f"locks_{os.getpid()}_{time.monotonic_ns()}"))


def _wait_for(predicate, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_a_killed_holder_releases_the_lock_and_the_waiter_goes_on(lock_url):
    name = "clearml_assets:test:kill"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from clearml_assets.locks import ClearMLPostgresLocks as L\n"
                               f"with L(sys.argv[1]).hold({name!r}):\n print('held', flush=True); sys.stdin.read()",
         lock_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    try:
        assert holder.stdout.readline().strip() == "held"
        got: list[str] = []

        def wait_for_lock() -> None:
            with ClearMLPostgresLocks(lock_url).hold(name):
                got.append("held")

        waiter = threading.Thread(target=wait_for_lock)
        waiter.start()
        _wait_for(lambda: waiting_for_lock(lock_url, name), "the second process waits for the lock")
        assert not got  # still waiting while the holder lives
        holder.send_signal(signal.SIGKILL)  # no unlock, no clean close: the server sees the connection go
        waiter.join(120)
        assert got == ["held"]
    finally:
        holder.kill()
        holder.wait(30)


def test_a_bounded_wait_names_who_holds_the_lock(lock_url):
    name = "clearml_assets:test:bounded"
    with ClearMLPostgresLocks(lock_url).hold(name):
        with pytest.raises(ClearMLLockError, match=r"held by a session from .*backend pid \d+") as failed:
            with ClearMLPostgresLocks(lock_url, wait_seconds=0.2).hold(name):
                pass
    assert lock_url.split("@")[0].split(":")[-1] not in str(failed.value)  # no password in the message
    with ClearMLPostgresLocks(lock_url, wait_seconds=0.2).hold(name):  # released: taken at once
        pass


def test_an_unreachable_database_is_a_clear_error(postgres_server):
    url = f"postgresql://dagster:wrong-password@{postgres_server.host}:{postgres_server.port}/postgres"
    with pytest.raises(ClearMLLockError, match="cannot be reached") as failed:
        with ClearMLPostgresLocks(url).hold("x"):
            pass
    assert "wrong-password" not in str(failed.value)


def _lock_sessions(url: str) -> list[int]:
    """Backend pids of the sessions the locks opened."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'clearml_assets lock' "
                    "AND datname = current_database()")
        return sorted(r[0] for r in cur.fetchall())


def test_one_connection_per_thread_is_kept_for_many_locks(lock_url):
    """A run's thousands of task locks take no new connection each: one per thread, closed with the locks; a
    connection that broke between two locks is replaced."""
    locks = ClearMLPostgresLocks(lock_url)
    for i in range(20):
        with locks.hold(f"clearml_assets:test:reuse:{i}"):
            assert waiting_for_lock(lock_url, f"clearml_assets:test:reuse:{i}") is False
    assert len(_lock_sessions(lock_url)) == 1
    barrier = threading.Barrier(3)

    def worker(n: int) -> None:
        for i in range(5):
            with locks.hold(f"clearml_assets:test:reuse:{n}:{i}"):
                if i == 0:
                    barrier.wait(60)  # all three hold a lock at once: three sessions
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(_lock_sessions(lock_url)) == 4  # the main thread's and one per worker thread
    with psycopg2.connect(lock_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                    "'clearml_assets lock' AND datname = current_database()")
    _wait_for(lambda: not _lock_sessions(lock_url), "the lock sessions are gone")
    with locks.hold("clearml_assets:test:reuse:after"):  # a new connection replaces the broken one
        assert len(_lock_sessions(lock_url)) == 1
    locks.close()
    _wait_for(lambda: not _lock_sessions(lock_url), "close() ends the sessions")
    other = ClearMLPostgresLocks(lock_url)
    with other.hold("clearml_assets:test:reuse:gc"):
        pass
    del other  # garbage-collected without close(): its connection is closed too
    _wait_for(lambda: not _lock_sessions(lock_url), "a collected lock object closes its sessions")


def test_runs_take_the_locks_of_their_instance(dagster_instance, monkeypatch):
    monkeypatch.delenv("CLEARML_ASSETS_LOCK_URL", raising=False)
    locks = locks_for_instance(dagster_instance)
    postgres = "postgres" in type(dagster_instance.run_storage).__name__.lower()
    assert isinstance(locks, ClearMLPostgresLocks if postgres else ClearMLFileLocks)
    if postgres:  # the lock really is taken in the instance's database
        with locks.hold("clearml_assets:test:instance"):
            pass
        assert "***" not in locks.describe() and "@" in locks.describe()


def test_two_hosts_restoring_one_task_make_one_copy(lock_url, tmp_path):
    """Two restorers with sessions of their own (as on two hosts): the second waits for the first's lock, then
    finds its finished copy and writes nothing."""
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        seeder = RawSeeder.of(a)
        task_id = seeder.seed_task(seeder.project("locks"), "locks", "restored once", SPEC)
        archive = ClearMLTaskExporter(client_of(a), "personal", tmp_path / "x").export_task(task_id).archive
        target = client_of(b, "original")
        name = restore_lock_name(target.api_host, task_id)
        second_waits = threading.Event()
        results: dict[str, object] = {}

        def first_step(step: str) -> None:  # the first restore pauses mid-way until the second is waiting
            if step == "uploads":
                _wait_for(lambda: waiting_for_lock(lock_url, name), "the second restore waits for the lock")
                second_waits.set()

        def restore(who: str, hook=None) -> None:
            restorer = TaskRestorer(client_of(b, "original"), locks=ClearMLPostgresLocks(lock_url), fail_after=hook)
            results[who] = restorer.restore_path(archive)[0]

        first = threading.Thread(target=restore, args=("first", first_step))
        first.start()
        _wait_for(lambda: bool(target.tasks.find_by_system_tag(provenance_tag(task_id))), "the first copy exists")
        second = threading.Thread(target=restore, args=("second",))
        second.start()
        first.join(300)
        second.join(300)
        assert second_waits.is_set()
        copies = target.tasks.find_by_system_tag(provenance_tag(task_id))
        assert len(copies) == 1 and INCOMPLETE_TAG not in (copies[0].get("system_tags") or [])
        assert results["first"].created and results["second"].unchanged
        assert results["first"].task_id == results["second"].task_id == copies[0]["id"]


def test_file_locks_stay_on_one_machine(tmp_path):
    locks = ClearMLFileLocks(tmp_path / "locks")
    with locks.hold("a"), locks.hold("b"):
        assert len(list((tmp_path / "locks").glob("*.lock"))) == 2
    assert "this machine only" in locks.describe()
