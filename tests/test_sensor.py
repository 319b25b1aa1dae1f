"""Real ticks of the completed-task sensor against the local ClearML server and a real Dagster instance.

Tasks are created and moved through their states with raw REST calls (``tasks.create``, ``tasks.started``,
``tasks.completed``, ``tasks.reset``), exactly as the real server's clients do. Each tick is evaluated with
``build_sensor_context`` on an ``instance_for_test`` and its partition requests are applied to the
instance, as the Dagster daemon does; the cursor a tick returns is what the next tick gets.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_api import RawApi  # noqa: E402

from clearml_assets.archives.defs import build_archive_defs  # noqa: E402
from clearml_assets.archives.assets import clearml_project_partitions, clearml_task_partitions  # noqa: E402
from clearml_assets.automation import build_clearml_completed_tasks_sensor  # noqa: E402
from clearml_assets.automation.sensors import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG  # noqa: E402
from clearml_assets.automation.cursor import ClearMLTaskCursor  # noqa: E402
from clearml_assets.client import ClearMLClient, ClearMLSession  # noqa: E402
from clearml_assets.errors import ClearMLConnectionError  # noqa: E402
from clearml_assets.resource import ClearMLAccount, ClearMLResource  # noqa: E402

ACCOUNT = "acme"
TASK_PARTS = clearml_task_partitions(ACCOUNT).name
PROJECT_PARTS = clearml_project_partitions(ACCOUNT).name


@pytest.fixture
def api(clearml_server) -> RawApi:
    return RawApi(clearml_server.info)


@pytest.fixture
def resource(clearml_server, tmp_path) -> ClearMLResource:
    return ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "home"), account=ACCOUNT)


@pytest.fixture
def instance(dagster_instance):
    """Every sensor/schedule test runs on SQLite and on PostgreSQL storage (conftest's dagster_instance)."""
    return dagster_instance


def new_task(api: RawApi, name: str, project: str | None = None, *, finish: str | None = "completed",
             system_tags: list[str] | None = None) -> str:
    fields = {"name": f"task-{name}", "type": "training"}  # the real server needs 3+ characters
    if project:
        fields["project"] = project
    if system_tags:
        fields["system_tags"] = system_tags
    task_id = api.call("tasks.create", **fields)["id"]
    api.call("tasks.started", task=task_id)
    if finish == "completed":
        api.call("tasks.completed", task=task_id)
    elif finish == "published":
        api.call("tasks.completed", task=task_id, publish=True)
    elif finish == "failed":
        api.call("tasks.failed", task=task_id)
    return task_id


def status_changed(api: RawApi, task_id: str) -> str:
    return api.call("tasks.get_all", id=[task_id], only_fields=["status_changed"])["tasks"][0]["status_changed"]


def context_for(sensor, instance, resource, cursor: str | None = None) -> dg.SensorEvaluationContext:
    """A sensor context inside a code location holding the archive assets (partitioned runs resolve)."""
    defs = dg.Definitions.merge(build_archive_defs([ACCOUNT]), dg.Definitions(sensors=[sensor], resources={"clearml": resource}))
    return dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                   resources={"clearml": resource}, definitions=defs)


def tick(sensor, instance, resource, cursor: str | None):
    """One evaluation; partition requests applied to the instance like the daemon does."""
    data = sensor.evaluate_tick(context_for(sensor, instance, resource, cursor))
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return data


def error_text(exc: BaseException) -> str:
    """The messages of an exception and its causes (Dagster wraps user code errors)."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)


def archived(instance, requests) -> list[str]:
    """The task ids the run requests archive: a run's partition, or every partition of its range (in the
    instance's order, as Dagster resolves a ranged run)."""
    keys = instance.get_dynamic_partitions(TASK_PARTS)
    out: list[str] = []
    for request in requests:
        if request.partition_key:
            out.append(request.partition_key)
            continue
        start, end = keys.index(request.tags[PARTITION_RANGE_START_TAG]), keys.index(request.tags[PARTITION_RANGE_END_TAG])
        assert start < end, "a ranged run covers more than one partition"
        out += keys[start:end + 1]
    return out


def run_until_idle(sensor, instance, resource, cursor=None, max_ticks=20):
    """Ticks until one finds nothing; returns (every run request, final cursor, ticks with runs)."""
    requests, busy = [], 0
    for _ in range(max_ticks):
        data = tick(sensor, instance, resource, cursor)
        cursor = data.cursor or cursor
        if not data.run_requests:
            return requests, cursor, busy
        requests += data.run_requests
        busy += 1
    raise AssertionError("sensor never caught up")


def test_new_completed_and_published_tasks_become_partitions_and_runs(api, resource, instance):
    alpha = api.call("projects.create", name="alpha", description="")["id"]
    beta = api.call("projects.create", name="beta", description="")["id"]
    done = [new_task(api, "a1", alpha), new_task(api, "b1", beta, finish="published"), new_task(api, "n1")]
    new_task(api, "running", alpha, finish=None)
    new_task(api, "broken", alpha, finish="failed")
    new_task(api, "dataset", alpha, system_tags=["hidden", "dataset"])
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)

    data = tick(sensor, instance, resource, None)
    assert sorted(archived(instance, data.run_requests)) == sorted(done)
    assert len(data.run_requests) == 1  # one run archives the three new tasks (a partition range)
    first, last = data.run_requests[0].tags[PARTITION_RANGE_START_TAG], data.run_requests[0].tags[PARTITION_RANGE_END_TAG]
    assert data.run_requests[0].run_key == \
        f"{first}:{status_changed(api, first)}..{last}:{status_changed(api, last)}+3"
    assert all(r.tags["clearml/account"] == ACCOUNT for r in data.run_requests)
    # the tasks' names beside their ids in the runs list (in the order of the partition range)
    assert data.run_requests[0].tags["clearml/task_names"] == "task-a1, task-b1, task-n1"
    assert sorted(instance.get_dynamic_partitions(TASK_PARTS)) == sorted(done)
    assert sorted(instance.get_dynamic_partitions(PROJECT_PARTS)) == sorted([alpha, beta])
    assert sensor.job_name == "clearml_archive_job_acme"

    again = tick(sensor, instance, resource, data.cursor)
    assert again.run_requests == [] and "No task" in again.skip_message
    later = new_task(api, "a2", alpha)
    third = tick(sensor, instance, resource, again.cursor)
    assert [r.partition_key for r in third.run_requests] == [later]


def test_project_filter_names_with_subprojects(api, resource, instance):
    alpha = api.call("projects.create", name="alpha", description="")["id"]
    sub = api.call("projects.create", name="alpha/runs", description="")["id"]
    other = api.call("projects.create", name="alphabet", description="")["id"]
    wanted = [new_task(api, "a", alpha), new_task(api, "s", sub)]
    in_other = new_task(api, "o", other)
    new_task(api, "none")
    data = tick(build_clearml_completed_tasks_sensor(ACCOUNT, projects=["alpha"]), instance, resource, None)
    assert sorted(archived(instance, data.run_requests)) == sorted(wanted)
    by_id = tick(build_clearml_completed_tasks_sensor(ACCOUNT, projects=[other]), instance, resource, None)
    assert [r.partition_key for r in by_id.run_requests] == [in_other]

    missing = tick(build_clearml_completed_tasks_sensor(ACCOUNT, projects=["nope"]), instance, resource, None)
    assert missing.run_requests == [] and "nope" in missing.skip_message and missing.cursor is None


def test_shared_timestamps_across_pages_and_ticks(clearml_server, api, resource, instance):
    ids = [new_task(api, f"t{i}") for i in range(7)]
    shared = status_changed(api, ids[2])
    for task_id in ids[2:6]:  # four tasks with one timestamp, as a millisecond-precision server gives
        doc = clearml_server.store.get("tasks", task_id)
        doc["status_changed"] = shared
        clearml_server.store.save("tasks", doc)
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, page_size=2, max_tasks_per_tick=3, overlap_seconds=0)
    requests, cursor, busy = run_until_idle(sensor, instance, resource)
    keys = archived(instance, requests)
    assert sorted(keys) == sorted(ids) and len(keys) == len(set(keys))
    assert busy == 3  # 3 + 3 + 1, each tick stopped at a safe point inside the shared timestamp


def test_bounded_tick_continues_next_tick(api, resource, instance):
    ids = [new_task(api, f"t{i}") for i in range(9)]
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, page_size=2, max_pages_per_tick=2)
    first = tick(sensor, instance, resource, None)
    assert 0 < len(first.run_requests) < len(ids)
    requests, _, _ = run_until_idle(sensor, instance, resource, first.cursor)
    keys = archived(instance, first.run_requests + requests)
    assert sorted(keys) == sorted(ids) and len(keys) == len(set(keys))


def test_tasks_completing_or_publishing_during_a_tick(api, resource, instance, monkeypatch):
    ids = [new_task(api, f"t{i}") for i in range(6)]
    original = ClearMLSession.call
    state = {"pages": 0, "added": []}

    def call_and_interfere(client, endpoint, **fields):
        result = original(client, endpoint, **fields)
        if endpoint == "tasks.get_all":
            state["pages"] += 1
            if state["pages"] == 1:
                state["added"].append(new_task(api, "during"))
                api.call("tasks.publish", task=ids[0])  # a row of page 1 moves to the end
        return result

    monkeypatch.setattr(ClearMLSession, "call", call_and_interfere)
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, page_size=2, max_tasks_per_run=1)
    requests, _, _ = run_until_idle(sensor, instance, resource)
    assert state["pages"] > 2 and len(state["added"]) == 1
    keys = [r.run_key for r in requests]
    assert len(keys) == len(set(keys))
    assert sorted({r.partition_key for r in requests}) == sorted(ids + state["added"])
    assert f"{ids[0]}:{status_changed(api, ids[0])}" in keys  # published = a new status change, archived again


def test_restart_continues_from_the_saved_cursor(clearml_server, api, resource, instance, tmp_path):
    first_ids = [new_task(api, f"t{i}") for i in range(3)]
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    saved = tick(sensor, instance, resource, None).cursor
    more = [new_task(api, f"u{i}") for i in range(2)]
    fresh_resource = ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "h2"),
                                                      account=ACCOUNT)
    fresh_sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    data = tick(fresh_sensor, instance, fresh_resource, saved)
    assert sorted(archived(instance, data.run_requests)) == sorted(more)
    assert not set(first_ids) & set(archived(instance, data.run_requests))


def test_failure_part_way_moves_nothing_and_next_tick_catches_up(clearml_server, api, resource, instance,
                                                                  monkeypatch):
    ids = [new_task(api, f"t{i}") for i in range(5)]
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, page_size=2)
    original = ClearMLSession.call
    pages = {"n": 0}
    host = clearml_server.info.api_host

    def fail_second_page(client, endpoint, **fields):
        if endpoint == "tasks.get_all":
            pages["n"] += 1
            if pages["n"] == 2:  # the server drops out after the first page
                raise ClearMLConnectionError(f"ClearML account '{ACCOUNT}': cannot reach {host} "
                                             "(connection refused or dropped).")
        return original(client, endpoint, **fields)

    monkeypatch.setattr(ClearMLSession, "call", fail_second_page)
    context = context_for(sensor, instance, resource)
    with pytest.raises(Exception) as info:
        sensor.evaluate_tick(context)
    message = error_text(info.value)
    assert "clearml_completed_tasks_sensor_acme" in message and host in message
    assert "cursor did not move" in message
    assert context.cursor is None and instance.get_dynamic_partitions(TASK_PARTS) == []

    monkeypatch.setattr(ClearMLSession, "call", original)
    requests, _, _ = run_until_idle(sensor, instance, resource)
    assert sorted(archived(instance, requests)) == sorted(ids)


def test_recompleted_task_is_archived_again(api, resource, instance):
    task_id = new_task(api, "retrained")
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    first = tick(sensor, instance, resource, None)
    api.call("tasks.reset", task=task_id)
    assert tick(sensor, instance, resource, first.cursor).run_requests == []  # reset: not finished
    api.call("tasks.started", task=task_id)
    api.call("tasks.completed", task=task_id)
    second = tick(sensor, instance, resource, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [task_id]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert second.run_requests[0].run_key == f"{task_id}:{status_changed(api, task_id)}"
    assert instance.get_dynamic_partitions(TASK_PARTS) == [task_id]


def test_new_tasks_are_archived_in_batches_of_max_tasks_per_run(api, resource, instance):
    ids = [new_task(api, f"t{i}") for i in range(7)]
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, max_tasks_per_run=3)
    data = tick(sensor, instance, resource, None)
    assert instance.get_dynamic_partitions(TASK_PARTS) == ids  # added in the order they completed
    ranged = [r for r in data.run_requests if not r.partition_key]
    assert [(r.tags[PARTITION_RANGE_START_TAG], r.tags[PARTITION_RANGE_END_TAG]) for r in ranged] == \
        [(ids[0], ids[2]), (ids[3], ids[5])]
    assert [r.tags["clearml/tasks"] for r in ranged] == ["3", "3"]
    assert [r.partition_key for r in data.run_requests if r.partition_key] == [ids[6]]  # a batch of one
    assert archived(instance, data.run_requests) == ids
    assert len({r.run_key for r in data.run_requests}) == 3

    one_each = tick(build_clearml_completed_tasks_sensor(ACCOUNT, max_tasks_per_run=1), instance, resource, None)
    assert {r.run_key for r in one_each.run_requests} == {f"{t}:{status_changed(api, t)}" for t in ids}


def test_a_known_partition_gets_a_run_of_its_own_beside_a_batch(api, resource, instance):
    """A range must only cover partitions added together: a task that already is a partition (re-completed)
    sits elsewhere in the partition order, so it is archived by a run of its own."""
    again = new_task(api, "again")
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    first = tick(sensor, instance, resource, None)
    api.call("tasks.reset", task=again)
    fresh = [new_task(api, "n0")]
    api.call("tasks.started", task=again)
    api.call("tasks.completed", task=again)
    fresh.append(new_task(api, "n1"))
    data = tick(sensor, instance, resource, first.cursor)
    singles = [r for r in data.run_requests if r.partition_key]
    assert [r.partition_key for r in singles] == [again]
    assert singles[0].run_key == f"{again}:{status_changed(api, again)}"
    assert instance.get_dynamic_partitions(TASK_PARTS) == [again, *fresh]
    assert sorted(archived(instance, data.run_requests)) == sorted([again, *fresh])


def test_late_commit_inside_overlap_is_not_lost(clearml_server, api, resource, instance):
    new_task(api, "first")
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT, overlap_seconds=5)
    first = tick(sensor, instance, resource, None)
    cursor_time = ClearMLTaskCursor.from_json(first.cursor).time
    late = new_task(api, "late")
    doc = clearml_server.store.get("tasks", late)  # committed after the tick, stamped 2 s before its end
    from datetime import timedelta

    from clearml_assets.automation.cursor import format_server_time
    from clearml_assets.timestamps import parse_clearml_time
    doc["status_changed"] = format_server_time(parse_clearml_time(cursor_time) - timedelta(seconds=2))
    clearml_server.store.save("tasks", doc)
    data = tick(sensor, instance, resource, first.cursor)
    assert [r.partition_key for r in data.run_requests] == [late]
    assert tick(sensor, instance, resource, data.cursor).run_requests == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_fails_fast_with_account_and_host(instance):
    host = f"http://127.0.0.1:{_free_port()}"
    down = ClearMLResource(accounts={ACCOUNT: ClearMLAccount(api_host=host, access_key="k", secret_key="s")},
                           default_account=ACCOUNT)
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    context = context_for(sensor, instance, down, '{"v":1,"time":null,"recent":{}}')
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        sensor.evaluate_tick(context)
    assert time.monotonic() - started < 15
    message = error_text(info.value)
    assert f"account '{ACCOUNT}'" in message and host in message and "cannot reach" in message
    assert context.cursor == '{"v":1,"time":null,"recent":{}}'


def test_wrong_keys_fail_with_401(clearml_server, api, instance):
    info = clearml_server.info
    new_task(api, "t")
    bad = ClearMLResource(accounts={ACCOUNT: ClearMLAccount(api_host=info.api_host, access_key=info.access_key,
                                                            secret_key="wrong-secret")}, default_account=ACCOUNT)
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    with pytest.raises(Exception) as err:
        sensor.evaluate_tick(context_for(sensor, instance, bad))
    message = error_text(err.value)
    assert "refused its keys (401" in message and info.api_host in message and "wrong-secret" not in message


def test_poll_reads_past_pages_a_server_cuts_short():
    """A server may cap ``tasks.get_all`` pages below the size asked for (the real one cuts at 500 without an
    error): a short page is not the end, only an empty one is."""
    from test_client import scripted_server

    from clearml_assets.automation.polling import poll_finished_tasks

    tasks = [{"id": f"{i:032x}", "name": f"t{i}", "project": "p" * 32, "status": "completed",
              "status_changed": f"2026-01-01T00:00:{i:02d}.000+00:00"} for i in range(10)]
    asked: list[int] = []

    def answer(path, body):
        asked.append(body["page_size"])
        bound = (body.get("status_changed") or [">="])[0][2:]
        rows = sorted((t for t in tasks if t["status_changed"] >= bound), key=lambda t: (t["status_changed"], t["id"]))
        start = body["page"] * body["page_size"]
        return 200, {"meta": {"result_code": 200}, "data": {"tasks": rows[start:start + 3]}}, {}  # cap of 3

    server, _ = scripted_server(answer)
    client = ClearMLClient(f"http://127.0.0.1:{server.server_port}", "AK", "client-secret-not-real-01")
    result = poll_finished_tasks(client, ClearMLTaskCursor(), page_size=2000, max_pages=50)
    assert [t.id for t in result.tasks] == [t["id"] for t in tasks]
    assert set(asked) == {500}  # clamped to the real cap
    server.shutdown()


def test_poll_leaves_out_the_public_companys_tasks():
    """ClearML's public examples (``company: ""``) come back from every get_all on a real server: the sensor
    must not archive them as the account's tasks, yet its cursor moves past them."""
    from test_client import scripted_server

    from clearml_assets.automation.polling import poll_finished_tasks

    tasks = [{"id": f"{i:032x}", "name": f"t{i}", "project": "p" * 32, "status": "completed",
              "company": "" if i % 2 else "c1", "status_changed": f"2026-01-01T00:00:{i:02d}.000+00:00"}
             for i in range(6)]

    def answer(path, body):
        assert "company" in body["only_fields"]
        bound = (body.get("status_changed") or [">="])[0][2:]
        rows = [t for t in tasks if t["status_changed"] >= bound]
        start = body["page"] * body["page_size"]
        return 200, {"meta": {"result_code": 200}, "data": {"tasks": rows[start:start + body["page_size"]]}}, {}

    server, _ = scripted_server(answer)
    client = ClearMLClient(f"http://127.0.0.1:{server.server_port}", "AK", "client-secret-not-real-01")
    result = poll_finished_tasks(client, ClearMLTaskCursor(), page_size=4)
    assert [t.id for t in result.tasks] == [t["id"] for t in tasks if t["company"]]
    again = poll_finished_tasks(client, result.cursor, page_size=4)
    assert again.tasks == []
    server.shutdown()


def test_idle_tick_makes_one_tasks_call(api, resource, instance, monkeypatch):
    """Nothing new: one ``tasks.get_all`` (its short page of known tasks is the end), after the resource's login
    and connection check."""
    ids = [new_task(api, f"t{i}") for i in range(4)]
    sensor = build_clearml_completed_tasks_sensor(ACCOUNT)
    requests, cursor, _ = run_until_idle(sensor, instance, resource)
    assert sorted(archived(instance, requests)) == sorted(ids)
    calls: list[str] = []
    original = ClearMLSession.call

    def counted(client, endpoint, **fields):
        calls.append(endpoint)
        return original(client, endpoint, **fields)

    monkeypatch.setattr(ClearMLSession, "call", counted)
    idle = tick(sensor, instance, resource, cursor)
    assert idle.run_requests == [] and calls == ["tasks.get_all"]
    late = new_task(api, "late")
    found = tick(sensor, instance, resource, idle.cursor)
    assert archived(instance, found.run_requests) == [late]


def test_poll_learns_a_server_that_cuts_pages_short_and_finds_tasks_past_a_page_of_known_ones():
    """A server cutting pages at 3 rows: the catch-up learns that (the cursor's ``cap``), so a later short page of
    three known tasks is not taken as the end and the new tasks after it are found."""
    from test_client import scripted_server

    from clearml_assets.automation.polling import poll_finished_tasks

    tasks = [{"id": f"{i:032x}", "name": f"t{i}", "project": "p" * 32, "status": "completed",
              "status_changed": f"2026-01-01T00:00:{i:02d}.000+00:00"} for i in range(8)]
    calls = {"n": 0}

    def answer(path, body):
        calls["n"] += 1
        bound = (body.get("status_changed") or [">="])[0][2:]
        rows = sorted((t for t in tasks if t["status_changed"] >= bound), key=lambda t: (t["status_changed"], t["id"]))
        start = body["page"] * body["page_size"]
        return 200, {"meta": {"result_code": 200}, "data": {"tasks": rows[start:start + 3]}}, {}

    server, _ = scripted_server(answer)
    client = ClearMLClient(f"http://127.0.0.1:{server.server_port}", "AK", "client-secret-not-real-01")
    first = poll_finished_tasks(client, ClearMLTaskCursor(), overlap_seconds=5)
    assert [t.id for t in first.tasks] == [t["id"] for t in tasks] and first.cursor.cap == 3
    assert ClearMLTaskCursor.from_json(first.cursor.to_json()).cap == 3
    tasks += [{"id": f"{i:032x}", "name": f"t{i}", "project": "p" * 32, "status": "completed",
               "status_changed": f"2026-01-01T00:00:{i:02d}.000+00:00"} for i in range(8, 10)]
    again = poll_finished_tasks(client, first.cursor, overlap_seconds=5)  # 5 known tasks lie in the overlap
    assert [t.id for t in again.tasks] == [tasks[8]["id"], tasks[9]["id"]]
    server.shutdown()
