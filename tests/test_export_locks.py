"""A project archive and a task archive never write one task's export at once, on any host: the project export
takes, for each of its tasks, the lock the task archive asset holds (``export_lock_name(root, account, "tasks",
id)`` in the instance's PostgreSQL), around the task's export and, on an object store, its upload.

Here a second session (another host's task asset run) holds one task's lock: the project export waits for it
(seen as a waiting session in ``pg_locks``, no timing) while its other tasks are exported, and finishes the task
once the lock is released. Every wait is for an event, bounded only so that a broken case cannot hang.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from clearml_assets.archives.assets import export_project_locked
from clearml_assets.archives.exporter import DEFAULT_STATUSES, ClearMLTaskExporter
from clearml_assets.locks import ClearMLPostgresLocks, export_lock_name
from clearml_assets.storage import RemoteExports
from pgserver import waiting_for_lock
from seeding import DemoSpec, RawSeeder, client_of

SPEC = DemoSpec(scalar_series=1, points_per_series=10, log_lines=5, artifacts=1, artifact_bytes=1024, plots=0,
                debug_images=0)


@pytest.fixture
def lock_url(postgres_server) -> str:
    return postgres_server.url(postgres_server.create_database(f"xlocks_{os.getpid()}_{time.monotonic_ns()}"))


def _project_waits_for_the_task(lock_url: str, root: str, exporter: ClearMLTaskExporter,
                                remote: RemoteExports | None, project: str, held: str, published) -> dict:
    """Hold task ``held``'s export lock in another session, run the project export, check it waits for that
    lock with the task unpublished (``published(task_id)``), release it; the project export's result."""
    name = export_lock_name(root, "personal", "tasks", held)
    out: dict = {}

    def run() -> None:
        with ClearMLPostgresLocks(lock_url) as locks:
            try:
                out["result"] = export_project_locked(exporter, remote, locks, "personal", project, force=False,
                                                      statuses=DEFAULT_STATUSES)
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                out["error"] = exc

    with ClearMLPostgresLocks(lock_url) as other_host, other_host.hold(name):
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 300
        while worker.is_alive() and not waiting_for_lock(lock_url, name):
            assert time.monotonic() < deadline, "the project export neither waited for the task's lock nor ended"
            time.sleep(0.05)
        assert worker.is_alive(), f"the project export ended without waiting for the task's lock: {sorted(out)}"
        assert not published(held)  # nothing of the held task is written while another host holds it
    worker.join(300)
    assert not worker.is_alive() and "error" not in out, out.get("error")
    return out["result"]


def test_a_project_export_waits_for_a_task_export_on_another_host(clearml_server, lock_url, tmp_path):
    ids = RawSeeder.of(clearml_server).seed_project("locked", 3, SPEC, workers=2)
    exporter = ClearMLTaskExporter(client_of(clearml_server), "personal", tmp_path / "exports")
    held = ids[0]
    with exporter:
        result = _project_waits_for_the_task(lock_url, str(exporter.root), exporter, None, "locked", held,
                                             lambda i: exporter.is_current(exporter.get_task(i))[0])
        assert sorted(r.task_id for r in result.tasks) == sorted(ids) and result.failures == []
        assert exporter.is_current(exporter.get_task(held))[0]


def test_on_an_object_store_the_upload_is_inside_the_task_lock_too(clearml_server, s3_bucket, lock_url, tmp_path):
    ids = RawSeeder.of(clearml_server).seed_project("locked-s3", 2, SPEC, workers=2)
    remote = RemoteExports(f"{s3_bucket.url}/exports", s3_bucket.server.storage_options(),
                           staging_root=tmp_path / "staging")
    exporter = ClearMLTaskExporter(client_of(clearml_server), "personal", remote.staging)
    held = ids[1]
    with exporter:
        result = _project_waits_for_the_task(lock_url, remote.store.url, exporter, remote, "locked-s3", held,
                                             lambda i: remote.check("personal", "tasks", i)[0])
        assert sorted(r.task_id for r in result.tasks) == sorted(ids) and result.failures == []
        assert all(remote.check("personal", "tasks", i)[0] for i in ids)
        assert remote.check("personal", "projects", result.project_id)[0]
