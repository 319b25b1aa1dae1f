"""Faults injected between the project and ClearML: every run fails clearly or recovers, nothing half-done
looks done, and a re-run completes the work.

An account ``faulty`` reaches a local server through two :class:`FaultProxy` instances (API and
fileserver). Each case runs an operation with a fault switched on, checks what it left, switches the
fault off, runs again and counts what arrived against what the server holds. The module prints the
totals: faults injected, runs, data lost and partial outputs marked done (both must be 0).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.archives.assets import (
    build_clearml_project_archive_asset,
    build_clearml_task_archive_asset,
    clearml_project_partitions,
    clearml_task_partitions,
)
from clearml_assets.archives.checks import verify_export
from seeding import DemoSpec, RawSeeder
from clearml_assets.automation.sensors import build_clearml_completed_tasks_sensor
from clearml_assets.datasets.defs import build_dataset_defs
from clearml_assets.datasets.versions import list_dataset_versions
from clearml_assets.local_server import LocalServerInfo
from clearml_assets.resource import ClearMLResource
from clearml_assets.sdk_process import run_in_sdk_process
from fault_proxy import FaultProxy

ACCOUNT = "faulty"
SPEC = DemoSpec(scalar_series=3, points_per_series=50, log_lines=40, artifacts=2, artifact_bytes=64 * 1024,
                plots=1, debug_images=1)
FAIL_BOUND_SECONDS = 60  # a failing run must end well inside this; the SDK alone would retry for minutes
TOTALS = {"faults injected": 0, "runs": 0, "data lost": 0, "partial outputs marked done": 0}


@pytest.fixture(scope="module", autouse=True)
def print_totals():
    yield
    print("\nfault injection totals: " + ", ".join(f"{k} = {v}" for k, v in TOTALS.items()))
    assert TOTALS["data lost"] == 0 and TOTALS["partial outputs marked done"] == 0


@dataclasses.dataclass
class World:
    api: FaultProxy
    files: FaultProxy
    resource: ClearMLResource
    seeder: RawSeeder
    project_id: str
    task_ids: list[str]
    export_root: Path
    instance: dg.DagsterInstance
    tmp: Path
    info: LocalServerInfo  # the server's, with the proxies as hosts

    def proxy(self, target: str) -> FaultProxy:
        return self.api if target == "api" else self.files



@pytest.fixture
def world(clearml_server, tmp_path: Path):
    info = clearml_server.info
    api, files = FaultProxy(info.api_host), FaultProxy(info.files_host)
    proxied = dataclasses.replace(info, api_host=api.url, files_host=files.url)
    seeder = RawSeeder(proxied.api_host, proxied.files_host, info.access_key, info.secret_key)
    project_id = seeder.project("fault cases")
    task_ids = [seeder.seed_task(project_id, "fault cases", f"task {i}", SPEC, index=i) for i in range(2)]
    resource = ClearMLResource.for_local_server(proxied, home=str(tmp_path / "home"), account=ACCOUNT)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(clearml_task_partitions(ACCOUNT).name, task_ids)
        instance.add_dynamic_partitions(clearml_project_partitions(ACCOUNT).name, [project_id])
        yield World(api, files, resource, seeder, project_id, task_ids, tmp_path / "exports", instance, tmp_path,
                    proxied)
    TOTALS["faults injected"] += api.total_injected + files.total_injected
    api.close()
    files.close()


def run_config(world: World) -> dict:
    return {"export_root": str(world.export_root)}


def materialize_archive(world: World, kind: str, key: str) -> dg.ExecuteInProcessResult:
    build = build_clearml_task_archive_asset if kind == "tasks" else build_clearml_project_archive_asset
    asset = build(ACCOUNT)
    TOTALS["runs"] += 1
    return dg.materialize([asset], partition_key=key, instance=world.instance, raise_on_error=False,
                          resources={"clearml": world.resource},
                          run_config={"ops": {asset.op.name: {"config": run_config(world)}}})


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    return " ".join(str(e.step_failure_data.error.message) for e in failures) if failures else ""


def published_archives(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".zip", ".gz", ".tar") and not p.name.startswith("."))


def count_partial_done(world: World, kind: str, obj_ids: list[str]) -> int:
    """Exports that look published (a manifest marked complete or an archive file) yet do not verify."""
    bad = 0
    for obj_id in obj_ids:
        passed, meta = verify_export(world.export_root, ACCOUNT, kind, obj_id)
        if not passed and "no published export" not in str(meta.get("problem", "")):
            bad += 1
    return bad


def archived_counts(world: World, task_id: str) -> dict[str, int]:
    for path in world.export_root.rglob("manifest.json"):
        manifest = json.loads(path.read_text())
        if task_id in (manifest.get("task_id"), manifest.get("id")) and manifest.get("counts"):
            return manifest["counts"]
    return {}


def expected_counts() -> dict[str, int]:
    return {"scalar_points": SPEC.scalar_series * SPEC.points_per_series, "log_lines": SPEC.log_lines}


def lost_points(world: World, task_ids: list[str]) -> int:
    lost = 0
    for task_id in task_ids:
        counts = archived_counts(world, task_id)
        lost += sum(max(0, n - int(counts.get(k, 0))) for k, n in expected_counts().items())
    return lost


# (case, which proxy, fault options, the run may succeed after bounded retries)
TASK_ARCHIVE_FAULTS = [
    ("503 burst on event reads", "api", dict(kind="status", code=503, match=r"/events\.", times=2), True),
    ("500 on the task read", "api", dict(kind="status", code=500, match=r"/tasks\.", times=1), False),
    ("401 after login", "api", dict(kind="status", code=401, match=r"^/v[0-9.]+/"), False),
    ("API response cut mid-body", "api", dict(kind="drop", match=r"/events\.get_task_log", times=1), False),
    ("download cut, connection reset", "files", dict(kind="drop", times=1), False),
    ("download short of its Content-Length", "files", dict(kind="truncate", times=1), False),
    ("slow API answers", "api", dict(kind="slow", delay=0.5, match=r"/events\.", times=3), True),
]


@pytest.mark.parametrize("case,target,fault,may_recover", TASK_ARCHIVE_FAULTS, ids=[c[0] for c in TASK_ARCHIVE_FAULTS])
def test_task_archive_under_fault(world: World, case: str, target: str, fault: dict, may_recover: bool):
    task_id = world.task_ids[0]
    world.proxy(target).inject(**fault)
    started = time.monotonic()
    result = materialize_archive(world, "tasks", task_id)
    elapsed = time.monotonic() - started
    assert world.proxy(target).injected, f"{case}: the fault was never hit"
    if result.success:
        assert may_recover, f"{case}: the run succeeded although the fault should have stopped it"
    else:
        message = failure_text(result)
        assert ACCOUNT in message, f"{case}: the failure does not name the account: {message[:500]}"
        assert elapsed < FAIL_BOUND_SECONDS, f"{case}: failing took {elapsed:.0f} s"
        assert not published_archives(world.export_root), f"{case}: an archive was published by a failed run"
    TOTALS["partial outputs marked done"] += count_partial_done(world, "tasks", [task_id])

    world.proxy(target).clear()
    assert materialize_archive(world, "tasks", task_id).success, f"{case}: the re-run failed"
    passed, meta = verify_export(world.export_root, ACCOUNT, "tasks", task_id)
    assert passed, meta
    TOTALS["data lost"] += lost_points(world, [task_id])


def test_task_archive_when_the_server_goes_away_and_comes_back(world: World):
    task_id = world.task_ids[1]
    world.api.take_away()
    started = time.monotonic()
    result = materialize_archive(world, "tasks", task_id)
    assert not result.success and time.monotonic() - started < FAIL_BOUND_SECONDS
    message = failure_text(result)
    assert ACCOUNT in message and str(world.api.port) in message, message[:500]
    assert not published_archives(world.export_root)
    world.api.bring_back()
    assert materialize_archive(world, "tasks", task_id).success
    assert verify_export(world.export_root, ACCOUNT, "tasks", task_id)[0]
    TOTALS["data lost"] += lost_points(world, [task_id])


def test_project_archive_with_a_truncated_download_then_rerun(world: World):
    world.files.inject("truncate", skip=SPEC.artifacts + 1, times=1)  # inside the second task
    result = materialize_archive(world, "projects", world.project_id)
    assert world.files.injected.get("truncate") == 1
    assert not result.success and ACCOUNT in failure_text(result)
    TOTALS["partial outputs marked done"] += count_partial_done(world, "projects", [world.project_id])
    world.files.clear()
    assert materialize_archive(world, "projects", world.project_id).success
    assert verify_export(world.export_root, ACCOUNT, "projects", world.project_id)[0]
    TOTALS["data lost"] += lost_points(world, world.task_ids)


def _tick(world: World, sensor, cursor: str | None):
    from clearml_assets.archives.defs import build_archive_defs

    defs = dg.Definitions.merge(build_archive_defs([ACCOUNT]),
                                dg.Definitions(sensors=[sensor], resources={"clearml": world.resource}))
    context = dg.build_sensor_context(instance=world.instance, instance_ref=world.instance.get_ref(), cursor=cursor,
                                      resources={"clearml": world.resource}, definitions=defs)
    TOTALS["runs"] += 1
    return sensor.evaluate_tick(context)


@pytest.mark.parametrize("fault", [dict(kind="status", code=401, match=r"^/v[0-9.]+/"),
                                   dict(kind="status", code=503, match=r"/tasks\.get_all"),
                                   dict(kind="away")], ids=["401", "503 until cleared", "server away"])
def test_sensor_tick_fails_clearly_and_the_next_catches_up(world: World, fault: dict):
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, max_tasks_per_run=1)
    first = _tick(world, sensor, None)
    cursor = first.cursor
    assert sorted(r.partition_key for r in first.run_requests) == sorted(world.task_ids)
    late = world.seeder.seed_task(world.project_id, "fault cases", "late task", SPEC, index=7)
    if fault["kind"] == "away":
        world.api.take_away()
    else:
        world.api.inject(**fault)
    started = time.monotonic()
    with pytest.raises(Exception) as err:
        _tick(world, sensor, cursor)
    assert time.monotonic() - started < FAIL_BOUND_SECONDS
    assert ACCOUNT in _error_text(err.value)
    world.api.clear()
    world.api.bring_back()
    caught_up = _tick(world, sensor, cursor)  # the failed tick moved nothing: the same cursor again
    assert [r.partition_key for r in caught_up.run_requests] == [late]
    TOTALS["data lost"] += 0 if caught_up.run_requests else 1


def _error_text(exc: BaseException | None) -> str:
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)


DATASET_FAULTS = [
    ("503 burst on uploads", dict(kind="status", code=503, times=2)),
    ("an upload's connection reset", dict(kind="drop", times=1)),
]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("case,fault", DATASET_FAULTS, ids=[c[0] for c in DATASET_FAULTS])
def test_dataset_version_under_fileserver_fault(world: World, case: str, fault: dict):
    defs = build_dataset_defs()
    raw_key = dg.AssetKey(["datasets", "shapes_raw"])
    source = world.tmp / "source"
    config = {"ops": {"datasets__shapes_raw": {"config": {
        "source_folder": str(source), "demo_images": 12, "demo_image_size": 64, "sdk_timeout_seconds": 240}}}}

    def run() -> dg.ExecuteInProcessResult:
        TOTALS["runs"] += 1
        return dg.materialize([*defs.assets], selection=[raw_key], instance=world.instance, run_config=config,
                              resources={"clearml": world.resource}, raise_on_error=False)

    world.files.inject(**fault)
    first = run()
    client = world.resource.client(ACCOUNT)
    versions = list_dataset_versions(client, "clearml_assets_demo", "shapes_raw")
    expected = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    if first.success:
        assert versions, f"{case}: success without a finalized version"
    else:
        assert not versions, f"{case}: a failed run left a finalized version"
    world.files.clear()
    if not first.success:
        assert run().success, f"{case}: the re-run failed"
    (newest, *_) = list_dataset_versions(client, "clearml_assets_demo", "shapes_raw")
    copy = Path(run_in_sdk_process("clearml_assets.datasets.sdk_ops:local_copy", newest.id,
                                   str(world.tmp / "copy"), env=world.resource.sdk_env(ACCOUNT), timeout=240))
    got = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    missing = set(expected) - set(got)
    TOTALS["data lost"] += len(missing)
    TOTALS["partial outputs marked done"] += int(bool(missing) and first.success)
    assert not missing, f"{case}: the finalized version lacks {sorted(missing)[:5]}"



@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_when_the_weights_upload_fails(world: World):
    from clearml_assets.training import build_training_defs
    from clearml_assets.training.registry import CHAMPION_TAG
    from conftest import sdk_env
    from test_training_asset import TINY, upload_dataset, write_view

    env = sdk_env(world.info, world.tmp / "sdkhome")
    dataset_id = upload_dataset(env, write_view(world.tmp / "view", train=12, val=4, size=64), "view", world.tmp)
    defs = build_training_defs(project="fault training", metric_floor=0.0)
    client = world.resource.client(ACCOUNT)

    def train() -> dg.ExecuteInProcessResult:
        TOTALS["runs"] += 1
        return dg.materialize([*defs.assets, *defs.asset_checks], raise_on_error=False,
                              resources={"clearml": world.resource}, instance=world.instance,
                              run_config={"ops": {"training__shapes_yolo": {"config": {
                                  **TINY, "epochs": 1, "dataset_id": dataset_id, "timeout_seconds": 400}}}})

    world.files.inject("status", code=503, match=r"^/$")  # every upload (multipart POST to /) refused
    failed = train()
    assert not failed.success and world.files.injected.get("status", 0) > 0
    message = failure_text(failed)
    assert "No model was registered and the champion is unchanged" in message, message[:800]
    models = client.session.call("models.get_all", only_fields=["id", "ready", "uri", "tags"])["models"]
    half_done = [m for m in models if m.get("ready") or CHAMPION_TAG in (m.get("tags") or [])]
    TOTALS["partial outputs marked done"] += len(half_done)
    assert not half_done, half_done
    (project,) = client.session.call("projects.get_all", name="^fault training$", only_fields=["id"])["projects"]
    tasks = client.session.call("tasks.get_all", project=[project["id"]], only_fields=["id", "status"])["tasks"]
    assert [t["status"] for t in tasks] == ["failed"]

    world.files.clear()
    assert train().success
    (champion,) = [m for m in client.session.call("models.get_all", only_fields=["id", "uri", "tags"])["models"]
                   if CHAMPION_TAG in (m.get("tags") or [])]
    weights = world.tmp / "weights.pt"
    assert client.files.download(champion["uri"], weights) > 0

