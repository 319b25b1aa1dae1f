"""Every read path against a misbehaving server (``tests/hostile_server.py`` in front of a real local server).

The task archive, the project archive, the completed-task sensor and restore each run with one endpoint (or
the fileserver) misbehaving: the same page for ever, pages in a cycle, a 200 MB body, a drip, a stall, malformed
JSON, a reset mid-body, 429/503 storms, endless or stuck scrolls, a log that ignores ``from_timestamp``. Each
case states how its run must end (a hang guard only stops a broken case from hanging: nothing asserts on time;
each request has a 4 s deadline instead of 60 s so that no case waits long), and checks that the misbehaving
call was actually made:

- ``fails``: a clear one-line error (a ``dagster.Failure``) naming the account, the misbehaving host and the
  call, and nothing partial looks done: no archive published for that run, no project archive, no sensor
  cursor moved, no restored copy without ``restore-incomplete``;
- ``incomplete``: an archive marked so, whose check fails (the next run exports it again);
- ``ok``: ridden out (a storm shorter than the retries) or harmless to this path, and then the result is the
  clean one: an archive holds what the server holds (the counts of a clean export), the sensor's runs are the
  completed tasks, the restored copy is the only copy and holds every event.

After the misbehaviour stops, the same run completes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import dagster as dg
import pytest
from hostile_server import HostileServer, bounded

from clearml_assets.archives.checks import verify_export
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.publish import find_export
from clearml_assets.client import ClearMLClient
from clearml_assets.errors import ClearMLAssetsError
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import INCOMPLETE_TAG, TaskRestorer, provenance_tag
from seeding import DemoSpec, RawSeeder

ACCOUNT = "hostile"
HANG_GUARD = 180.0  # only stops a broken case from hanging
DEADLINE = 4.0  # each request's deadline in these tests (the default is 60 s)
SPEC = DemoSpec(scalar_series=2, points_per_series=20, log_lines=30, artifacts=1, artifact_bytes=2048, plots=2,
                debug_images=2)
COUNTS = ("scalar_points", "log_events", "plots", "debug_image_events", "artifact_files", "debug_image_files")
MB = 1 << 20

# (endpoint, or "/" for the fileserver, kind, options, outcome): one misbehaviour each, and what it must end in:
# "fails" (a clear error naming the account, the host and the call; nothing published), "incomplete" (an archive
# marked so, whose check fails), or "ok" (ridden out, or harmless to this path: the result is the clean one).
EXPORT_CASES = [
    ("tasks.get_by_id", "reset_mid_body", {}, "fails"),
    ("tasks.get_by_id", "malformed_json", {}, "fails"),
    ("projects.get_by_id", "drip", {"interval": 0.5}, "fails"),
    ("projects.get_by_id", "malformed_json", {}, "fails"),
    ("events.get_task_events", "endless_scroll", {"total": 50, "batch": 5}, "incomplete"),
    ("events.get_task_events", "same_scroll", {}, "incomplete"),
    ("events.get_task_events", "huge_body", {"size": 200 * MB}, "incomplete"),
    ("events.get_task_events", "malformed_json", {}, "incomplete"),
    ("events.get_task_log", "log_cycle", {"period": 3}, "incomplete"),
    ("events.get_task_log", "drip", {"interval": 0.5}, "fails"),
    ("events.get_scalar_metrics_and_variants", "stall", {}, "fails"),
    ("models.get_all", "same_page", {}, "ok"),  # one short page: a repeat is never asked for
    ("models.get_all", "page_cycle", {"period": 2}, "ok"),
    ("events.get_task_events", "storm", {"status": 503, "retry_after": None}, "fails"),
    ("events.get_task_events", "storm", {"status": 429, "retry_after": 0, "times": 1}, "ok"),  # ridden out
    ("/", "reset_mid_body", {}, "fails"),
    ("/", "drip", {"interval": 0.5}, "fails"),
]
PROJECT_CASES = [
    ("tasks.get_all", "same_page", {}, "fails"),
    ("tasks.get_all", "page_cycle", {"period": 2}, "ok"),  # the upstream's page 1 is empty: the listing ends
    ("tasks.get_all", "huge_body", {"size": 200 * MB}, "fails"),
    ("projects.get_by_id", "malformed_json", {}, "fails"),
    ("events.get_task_log", "same_scroll", {}, "incomplete"),  # the second task is answered the first's log
    ("/", "reset_mid_body", {"times": 1}, "fails"),
]
SENSOR_CASES = [
    ("tasks.get_all", "same_page", {}, "ok"),  # keyset pages: the first, short page ends the poll
    ("tasks.get_all", "page_cycle", {"period": 2}, "ok"),
    ("tasks.get_all", "huge_body", {"size": 200 * MB}, "fails"),
    ("tasks.get_all", "drip", {"interval": 0.5}, "fails"),
    ("tasks.get_all", "malformed_json", {}, "fails"),
    ("tasks.get_all", "reset_mid_body", {}, "fails"),
    ("tasks.get_all", "storm", {"status": 503, "retry_after": 1}, "fails"),
    ("tasks.get_all", "storm", {"status": 429, "retry_after": 0, "times": 2}, "ok"),  # ridden out
]
RESTORE_CASES = [
    ("tasks.get_all", "same_page", {}, "ok"),  # the provenance lookup: one short page
    ("tasks.get_all", "drip", {"interval": 0.5}, "fails"),
    ("tasks.get_all", "reset_mid_body", {}, "fails"),
    ("projects.get_all", "malformed_json", {}, "fails"),
    ("projects.get_all", "stall", {}, "fails"),
    ("events.add_batch", "storm", {"status": 503, "retry_after": None}, "fails"),
    ("/", "reset_mid_body", {}, "fails"),
]


def _ids(cases: list) -> list[str]:
    return [f"{key} {kind}{' ' + str(opts) if opts else ''}" for key, kind, opts, _ in cases]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One local server for the module: a project of two completed tasks, and a clean export of the first."""
    tmp = tmp_path_factory.mktemp("read_paths")
    with LocalServer(tmp / "server", api_port=0, files_port=0) as server:
        info = server.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        project = seeder.project("hostile reads")
        tasks = [seeder.seed_task(project, "hostile reads", f"task {i}", SPEC, index=i) for i in range(2)]
        clean = ClearMLTaskExporter(_direct(info), ACCOUNT, tmp / "clean").export_task(tasks[0])
        assert clean.manifest["status"] == "ok"
        yield SimpleNamespace(server=server, info=info, seeder=seeder, project=project, tasks=tasks, clean=clean,
                              tmp=tmp)


def _direct(info) -> ClearMLClient:
    return ClearMLClient(info.api_host, info.access_key, info.secret_key, account=ACCOUNT, files_host=info.files_host,
                         web_host=info.web_host)


def _proxied(info, api: HostileServer, files: HostileServer, deadline: float = DEADLINE) -> ClearMLClient:
    """The account's client through the hostile proxies (stored file URLs name the real fileserver: an alias)."""
    return ClearMLClient(api.url, info.access_key, info.secret_key, account=ACCOUNT, files_host=files.url,
                         files_host_aliases=[info.files_host], web_host=info.web_host, deadline_seconds=deadline,
                         retries=1, retry_after_max_seconds=2)


def _bounded(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """``(result, error)`` of ``call``, run in a thread so that a hang fails the test instead of stalling it."""
    return bounded(call, HANG_GUARD, "the read path is not bounded")


def _clear(error: BaseException) -> ClearMLAssetsError:
    """The project's own failure in ``error`` (Dagster wraps what a sensor raises)."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, ClearMLAssetsError):
        seen = seen.__cause__ or seen.__context__
    assert seen is not None, f"not a clear failure: {error!r}"
    return seen


class Hostile(SimpleNamespace):
    """The API and fileserver proxies of one case, one of them told to misbehave."""

    def run(self, call: Callable[[], Any]) -> tuple[Any, ClearMLAssetsError | None]:
        """``call`` under the hang guard; the misbehaviour was met, and a failure is one clear line naming the
        account, the misbehaving host and the call (``download``/``upload`` for the fileserver)."""
        result, error = _bounded(call)
        assert self.rule.hits > 0, f"{self.key} was never called: the case tests nothing"
        if error is None:
            return result, None
        error = _clear(error)
        text = str(error)
        host = (self.files if self.key == "/" else self.api).url
        call_name = ("download", "upload") if self.key == "/" else (self.key,)
        assert ACCOUNT in text and host in text and any(c in text for c in call_name), text
        assert "\n" not in text.strip(), text
        return result, error

    def behave(self) -> None:
        self.api.behave()
        self.files.behave()


@contextlib.contextmanager
def _hostile(world, key: str, kind: str, options: dict) -> Iterator[Hostile]:
    api, files = HostileServer(upstream=world.info.api_host), HostileServer(upstream=world.info.files_host)
    options = dict(options)
    with api, files:
        rule = (files if key == "/" else api).misbehave(key, kind, times=options.pop("times", None), **options)
        yield Hostile(api=api, files=files, rule=rule, key=key)


def _outcome(result, error) -> str:
    if error is not None:
        return "fails"
    manifest = getattr(result, "manifest", None)
    return "incomplete" if manifest is not None and manifest["status"] == "incomplete" else "ok"


def _check_task_export(world, result, error, root: Path, task_id: str) -> None:
    """A failed export published nothing; a published one is complete and correct, or marked incomplete."""
    if error is not None:
        assert find_export(root, ACCOUNT, "tasks", task_id) is None, "a failed export published an archive"
        return
    if result.manifest["status"] == "incomplete":
        assert not verify_export(root, ACCOUNT, "tasks", task_id)[0]  # never taken as done
        assert any("error" in i for i in result.issues)
        return
    assert verify_export(root, ACCOUNT, "tasks", task_id)[0]
    assert {k: result.counts.get(k) for k in COUNTS} == {k: world.clean.counts.get(k) for k in COUNTS}


@pytest.mark.parametrize("key,kind,options,expected", EXPORT_CASES, ids=_ids(EXPORT_CASES))
def test_the_task_archive_against_a_misbehaving_server(world, tmp_path: Path, key: str, kind: str, options: dict,
                                                       expected: str):
    task_id, root = world.tasks[0], tmp_path / "exports"
    with _hostile(world, key, kind, options) as case:
        exporter = ClearMLTaskExporter(_proxied(world.info, case.api, case.files), ACCOUNT, root, max_workers=2)
        result, error = case.run(lambda: exporter.export_task(task_id))
        assert _outcome(result, error) == expected, error or result.issues
        _check_task_export(world, result, error, root, task_id)
        exporter.close()
        case.behave()
        exporter = ClearMLTaskExporter(_proxied(world.info, case.api, case.files, 60), ACCOUNT, root, max_workers=2)
        again = exporter.export_task(task_id)  # the next run completes (an ok archive is current: kept)
        assert again.manifest["status"] == "ok" and again.skipped == (expected == "ok")
        _check_task_export(world, again, None, root, task_id)
        exporter.close()


@pytest.mark.parametrize("key,kind,options,expected", PROJECT_CASES, ids=_ids(PROJECT_CASES))
def test_the_project_archive_against_a_misbehaving_server(world, tmp_path: Path, key: str, kind: str,
                                                          options: dict, expected: str):
    root = tmp_path / "exports"
    with _hostile(world, key, kind, options) as case:
        exporter = ClearMLTaskExporter(_proxied(world.info, case.api, case.files), ACCOUNT, root, max_workers=2)
        result, error = case.run(lambda: exporter.export_project(world.project))
        assert _outcome(result, error) == expected, error or result.manifest
        if error is not None:
            assert find_export(root, ACCOUNT, "projects", world.project) is None
        elif expected == "ok":
            assert sorted(r.task_id for r in result.tasks) == sorted(world.tasks)
            assert verify_export(root, ACCOUNT, "projects", world.project)[0]
            first = next(r for r in result.tasks if r.task_id == world.tasks[0])
            assert {k: first.counts.get(k) for k in COUNTS} == {k: world.clean.counts.get(k) for k in COUNTS}
        else:  # an incomplete project archive is never taken as done
            assert not verify_export(root, ACCOUNT, "projects", world.project)[0]
        exporter.close()
        case.behave()
        exporter = ClearMLTaskExporter(_proxied(world.info, case.api, case.files, 60), ACCOUNT, root, max_workers=2)
        again = exporter.export_project(world.project)
        assert again.manifest["status"] == "ok" and sorted(r.task_id for r in again.tasks) == sorted(world.tasks)
        assert verify_export(root, ACCOUNT, "projects", world.project)[0]
        exporter.close()


def _tick(resource, instance, cursor: str | None):
    from clearml_assets.archives.defs import build_archive_defs
    from clearml_assets.automation import build_clearml_completed_tasks_sensor

    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, max_tasks_per_run=1)
    defs = dg.Definitions.merge(build_archive_defs([ACCOUNT]),
                                dg.Definitions(sensors=[sensor], resources={"clearml": resource}))
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                      resources={"clearml": resource}, definitions=defs)
    return sensor.evaluate_tick(context)


def _requested(tick) -> set[str]:
    return {request.partition_key for request in tick.run_requests or []}


@pytest.mark.parametrize("key,kind,options,expected", SENSOR_CASES, ids=_ids(SENSOR_CASES))
def test_the_completed_task_sensor_against_a_misbehaving_server(world, key: str, kind: str, options: dict,
                                                                expected: str):
    from clearml_assets.resource import ClearMLAccount, ClearMLResource

    with _hostile(world, key, kind, options) as case, dg.instance_for_test() as instance:
        account = ClearMLAccount(api_host=case.api.url, files_host=case.files.url, web_host=world.info.web_host,
                                 access_key=world.info.access_key, secret_key=world.info.secret_key,
                                 request_deadline_seconds=DEADLINE)
        resource = ClearMLResource(accounts={ACCOUNT: account}, default_account=ACCOUNT,
                                   home=str(world.tmp / "home"))
        tick, error = case.run(lambda: _tick(resource, instance, None))
        assert _outcome(tick, error) == expected, error
        if error is None:  # a result is the right one
            assert set(world.tasks) <= _requested(tick)
        else:  # a failed tick hands Dagster no cursor and no run: the next tick, from the same cursor, sees all
            assert "cursor did not move" in str(error)
            if kind in ("drip", "stall"):  # the account's deadline, not the poll's own 30 s
                assert f"within its {DEADLINE:g}s deadline" in str(error), str(error)
            case.behave()
            assert set(world.tasks) <= _requested(_tick(resource, instance, None))


@pytest.mark.parametrize("key,kind,options,expected", RESTORE_CASES, ids=_ids(RESTORE_CASES))
def test_restore_against_a_misbehaving_target(world, tmp_path: Path, key: str, kind: str, options: dict,
                                              expected: str):
    seeder, info = world.seeder, world.info
    source = seeder.seed_task(seeder.project("restore source"), "restore source", f"restore {key} {kind}", SPEC)
    archive = ClearMLTaskExporter(_direct(info), ACCOUNT, tmp_path / "exports").export_task(source)
    with _hostile(world, key, kind, options) as case:
        restorer = TaskRestorer(_proxied(info, case.api, case.files), project="restored here")
        results, error = case.run(lambda: restorer.restore_path(archive.archive))
        assert _outcome(results, error) == expected, error
        copies = _direct(info).tasks.find_by_system_tag(provenance_tag(source))
        if error is not None:  # nothing half-restored looks done
            assert all(INCOMPLETE_TAG in (c.get("system_tags") or []) for c in copies), copies
        else:
            assert [c["id"] for c in copies] == [results[0].task_id]
        case.behave()
        (done,) = TaskRestorer(_proxied(info, case.api, case.files, 60), project="restored here").restore_path(
            archive.archive)
        copy = _direct(info).tasks.get(done.task_id)
        assert INCOMPLETE_TAG not in copy.system_tags and copy.status == "completed"
        assert [c["id"] for c in _direct(info).tasks.find_by_system_tag(provenance_tag(source))] == [done.task_id]
        assert done.unchanged or done.counts["scalar_points"] == archive.counts["scalar_points"]
