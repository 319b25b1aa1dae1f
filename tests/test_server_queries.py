"""The exporter's read paths: ``tasks.get_all`` paging, ordering, status/date/tag filters, ``models.get_all``.

527 tasks (7 hidden) are created through the REST API once; expectations are computed from what was
created, never hard-coded. The SDK (``Task.get_tasks``, ``APIClient``) pages the same data.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_sdk_script, sdk_env  # noqa: E402
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import LocalServer  # noqa: E402

N_VISIBLE = 520
N_HIDDEN = 7
STATUS_BY_MOD = ["created", "in_progress", "completed", "stopped"]


def tags_of(i: int) -> list[str]:
    tags = []
    if i % 3 == 0:
        tags.append("alpha")
    if i % 5 == 0:
        tags.append("beta")
    return tags


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LocalServer(tmp_path_factory.mktemp("query_server"), api_port=0, files_port=0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server) -> RawApi:
    return RawApi(server.info)


@pytest.fixture(scope="module")
def tasks(api) -> dict:
    """Create the tasks; returns the project id and ``{task id: what it was created with}``."""
    project = api.call("projects.create", name="queries", description="query tests")["id"]
    created = {}
    for i in range(N_VISIBLE + N_HIDDEN):
        hidden = i >= N_VISIBLE
        system_tags = tags_of(i) + (["hidden"] if hidden else [])
        tid = api.call("tasks.create", name=f"task-{(i * 37) % 1000:03d}-{i}", type="training", project=project,
                       system_tags=system_tags, tags=[f"t{i % 2}"],
                       script={"entry_point": f"train_{i}.py", "repository": "https://example/repo"})["id"]
        status = STATUS_BY_MOD[i % 4]
        if status != "created":
            api.call("tasks.started", task=tid)
        if status == "completed":
            api.call("tasks.completed", task=tid)
        elif status == "stopped":
            api.call("tasks.stopped", task=tid)
        created[tid] = {"i": i, "status": status, "system_tags": system_tags, "hidden": hidden}
    return {"project": project, "created": created}


def all_rows(api: RawApi, **fields) -> list[dict]:
    return [row for page in api.pages("tasks.get_all", "tasks", page_size=100, **fields) for row in page]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_paging_returns_every_task_once_in_order(api, tasks):
    rows = all_rows(api, project=[tasks["project"]], order_by=["name"], only_fields=["id", "name"])
    ids = [r["id"] for r in rows]
    visible = {t for t, c in tasks["created"].items() if not c["hidden"]}
    assert len(ids) == len(set(ids)) == N_VISIBLE
    assert set(ids) == visible
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)
    pages = [len(p) for p in api.pages("tasks.get_all", "tasks", page_size=500, project=[tasks["project"]],
                                       only_fields=["id"])]
    assert pages == [500, N_VISIBLE - 500]
    # without paging, and with a bigger page_size, the real server returns at most 500
    assert len(api.call("tasks.get_all", project=[tasks["project"]], only_fields=["id"])["tasks"]) == 500
    big = api.call("tasks.get_all", project=[tasks["project"]], only_fields=["id"], order_by=["name"],
                   page=1, page_size=1000)["tasks"]
    assert [r["id"] for r in big] == ids[500:]
    # scroll paging: the first call carries an empty scroll_id, each next one the id it got back
    scrolled, scroll = [], None
    while True:
        data = api.call("tasks.get_all", project=[tasks["project"]], size=200, only_fields=["id"],
                        order_by=["-name"], scroll_id=scroll)
        scroll = data["scroll_id"]
        if not data["tasks"]:
            break
        scrolled += [r["id"] for r in data["tasks"]]
    assert scrolled == ids[::-1]  # names are unique
    first = api.call("tasks.get_all", project=[tasks["project"]], size=50, order_by=["name"], scroll_id="",
                     only_fields=["id"])
    again = api.call("tasks.get_all", project=[tasks["project"]], size=10, order_by=["name"], refresh_scroll=True,
                     scroll_id=first["scroll_id"], only_fields=["id"])
    assert [r["id"] for r in again["tasks"]] == ids[:50]  # refresh: everything up to the position again
    status, subcode, _ = api.error("tasks.get_all", scroll_id="", project=[tasks["project"]])
    assert (status, subcode) == (400, 12)  # scrolling needs an integer size


def test_order_by_multiple_fields(api, tasks):
    rows = all_rows(api, project=[tasks["project"]], order_by=["status", "-last_update"],
                    only_fields=["id", "status", "last_update"])
    expected = sorted(rows, key=lambda r: r["id"])
    expected = sorted(expected, key=lambda r: when(r["last_update"]), reverse=True)
    expected = sorted(expected, key=lambda r: r["status"])
    assert [r["id"] for r in rows] == [r["id"] for r in expected]


def test_status_filter(api, tasks):
    rows = all_rows(api, project=[tasks["project"]], status=["completed", "stopped"], only_fields=["id", "status"])
    expected = {t for t, c in tasks["created"].items()
                if c["status"] in ("completed", "stopped") and not c["hidden"]}
    assert {r["id"] for r in rows} == expected and len(rows) == len(expected)


@pytest.mark.parametrize("field", ["status_changed", "last_update"])
def test_date_filters_half_open_and_inclusive_pair(api, tasks, field):
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id", field])
    values = sorted({r[field] for r in rows}, key=when)
    lo, hi = values[100], values[300]
    half_open = {r["id"] for r in rows if when(lo) <= when(r[field]) < when(hi)}
    closed = {r["id"] for r in rows if when(lo) <= when(r[field]) <= when(hi)}
    assert half_open and half_open < closed
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"], **{field: [f">={lo}", f"<{hi}"]})
    assert {r["id"] for r in got} == half_open and len(got) == len(half_open)
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"], **{field: [lo, hi]})
    assert {r["id"] for r in got} == closed
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"], **{field: [lo, None]})
    assert {r["id"] for r in got} == {r["id"] for r in rows if when(r[field]) >= when(lo)}


@pytest.mark.parametrize("query, rule", [
    (["__$all", "alpha", "beta"], lambda t: {"alpha", "beta"} <= t),
    (["alpha", "beta"], lambda t: bool({"alpha", "beta"} & t)),
    (["__$not", "alpha"], lambda t: "alpha" not in t),
    (["-alpha"], lambda t: "alpha" not in t),
    (["__$all", "alpha", "__$not", "beta"], lambda t: "alpha" in t and "beta" not in t),
])
def test_system_tags_operators(api, tasks, query, rule):
    rows = all_rows(api, project=[tasks["project"]], system_tags=query, only_fields=["id"])
    expected = {t for t, c in tasks["created"].items() if not c["hidden"] and rule(set(c["system_tags"]))}
    assert expected and {r["id"] for r in rows} == expected and len(rows) == len(expected)


def test_search_hidden(api, tasks):
    hidden = {t for t, c in tasks["created"].items() if c["hidden"]}
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id"])
    assert not hidden & {r["id"] for r in rows}
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id"], search_hidden=True)
    assert len(rows) == N_VISIBLE + N_HIDDEN and hidden <= {r["id"] for r in rows}
    one = sorted(hidden)[0]
    assert [r["id"] for r in api.call("tasks.get_all", id=[one])["tasks"]] == [one]


def test_dotted_only_fields(api, tasks):
    rows = api.call("tasks.get_all", project=[tasks["project"]], order_by=["name"], page=0, page_size=3,
                    only_fields=["name", "script.entry_point", "status"])["tasks"]
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"id", "name", "script", "status"}
        assert set(row["script"]) == {"entry_point"}
        assert row["script"]["entry_point"] == f"train_{tasks['created'][row['id']]['i']}.py"
    # like Mongo, an existing parent of a missing leaf comes back empty (Dataset.create relies on it)
    row = api.call("tasks.get_all", id=[rows[0]["id"]], only_fields=["runtime.version", "nope.x"])["tasks"][0]
    assert row == {"id": rows[0]["id"], "runtime": {}}
    # a leading "-" leaves a field out and keeps the rest
    full = api.call("tasks.get_by_id", task=rows[0]["id"])["task"]
    row = api.call("tasks.get_all", id=[rows[0]["id"]], only_fields=["-script.entry_point", "-hyperparams"])
    row = row["tasks"][0]
    assert "hyperparams" not in row and row["script"] == {"repository": "https://example/repo"}
    assert row["name"] == full["name"] and row["status"] == full["status"]


def test_invalid_queries_get_the_real_errors(api, tasks):
    assert len(api.call("tasks.get_all", page=0, only_fields=["id"])["tasks"]) == 500  # page_size defaults to 500
    assert api.error("tasks.get_all", page=-1, page_size=5)[:2] == (400, 12)
    assert api.error("tasks.get_all", page=0, page_size=0)[:2] == (400, 12)
    status, _, msg = api.error("tasks.get_by_id", task="0" * 32)
    assert status == 400 and "Invalid task id" in msg
    assert api.error("tasks.get_all", name="(unclosed")[:2] == (400, 21)
    assert api.error("tasks.get_all", system_tags=["alpha", "__$not"])[:2] == (400, 16)
    assert api.error("tasks.get_all", system_tags=["__$bogus", "alpha"])[:2] == (400, 16)
    assert api.error("tasks.get_all", system_tags=[1])[:2] == (400, 16)
    assert api.error("tasks.get_all", created=["2024-01-01"])[:2] == (400, 12)  # a range needs [min, max]
    assert api.error("tasks.get_all", created=[None, None])[:2] == (400, 12)
    assert api.error("tasks.get_all", _any_={"fields": ["name"]})[:2] == (400, 12)


def test_models_get_all_filters_and_paging(api, tasks):
    some = sorted(tasks["created"])[:3]
    made = {}
    for i in range(25):
        task = some[i % 3]
        mid = api.call("models.create", name=f"model-{i:02d}", uri=f"http://example/m{i}.pt", task=task,
                       project=tasks["project"], ready=i % 2 == 0, framework="PyTorch")["id"]
        made[mid] = (task, i % 2 == 0)
    got = [m for page in api.pages("models.get_all", "models", page_size=10, project=[tasks["project"]],
                                   order_by=["name"], only_fields=["id", "name", "uri"]) for m in page]
    assert {m["id"] for m in got} == set(made) and len(got) == 25
    assert [m["name"] for m in got] == [f"model-{i:02d}" for i in range(25)]
    by_task = api.call("models.get_all", task=[some[0]], only_fields=["id"])["models"]
    assert {m["id"] for m in by_task} == {m for m, (t, _) in made.items() if t == some[0]}
    ready = api.call("models.get_all", ready=True, project=[tasks["project"]], only_fields=["id"])["models"]
    assert {m["id"] for m in ready} == {m for m, (_, r) in made.items() if r}
    named = api.call("models.get_all", name="^model-1[0-4]$", only_fields=["id", "name"])["models"]
    assert sorted(m["name"] for m in named) == [f"model-1{i}" for i in range(5)]


def test_fileserver_get_has_content_length(server, api, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    resp = api.session.post(server.info.files_host + "/",
                            files={"queries/task.x/artifacts/big/big.bin": ("big.bin", payload)}, timeout=60)
    assert resp.status_code == 200
    got = api.file(f"{server.info.files_host}/queries/task.x/artifacts/big/big.bin")
    assert got.status_code == 200
    assert int(got.headers["Content-Length"]) == len(payload) and got.content == payload
    missing = api.file(f"{server.info.files_host}/queries/task.x/artifacts/big/nope.bin")
    assert missing.status_code == 404


SDK_READS = r"""
import json
from clearml import Task
from clearml.backend_api.session.client import APIClient
out = {{}}
out["get_tasks"] = [t.id for t in Task.get_tasks(project_name="queries")]  # documented: first page only
out["query_tasks"] = Task.query_tasks(project_name="queries")
out["completed_alpha"] = [t.id for t in Task.get_tasks(
    project_name="queries", task_filter={{"status": ["completed"], "system_tags": ["__$all", "alpha"]}})]
client = APIClient()
ids, page = [], 0
while True:
    rows = client.tasks.get_all(project=["{project}"], page=page, page_size=200, order_by=["-last_update"],
                                only_fields=["id", "last_update"])
    ids += [r.id for r in rows]
    if len(rows) < 200:
        break
    page += 1
out["apiclient"] = ids
print("RESULT " + json.dumps(out))
"""


def test_sdk_pages_more_than_500_tasks(server, api, tasks, tmp_path):
    env = sdk_env(server.info, tmp_path / "home")
    proc = run_sdk_script(SDK_READS.format(project=tasks["project"]), env, timeout=90, cwd=tmp_path)
    out = json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
    visible = {t for t, c in tasks["created"].items() if not c["hidden"]}
    assert len(out["get_tasks"]) == 500 and set(out["get_tasks"]) < visible
    assert sorted(out["query_tasks"]) == sorted(visible)
    assert set(out["completed_alpha"]) == {t for t in visible if tasks["created"][t]["status"] == "completed"
                                           and "alpha" in tasks["created"][t]["system_tags"]}
    assert sorted(out["apiclient"]) == sorted(visible)
    rows = all_rows(api, project=[tasks["project"]], order_by=["-last_update"], only_fields=["id"])
    assert out["apiclient"] == [r["id"] for r in rows]


def test_empty_first_order_field_sorts_last_both_ways(api, tasks):
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id", "started"], order_by=["started"])
    never = [r for r in rows if r.get("started") is None]
    assert never and len(never) < len(rows)
    assert rows[-len(never):] == never  # ascending: tasks never started come after all started ones
    assert [r["id"] for r in never] == sorted(r["id"] for r in never)  # id tie-break
    started = [r["started"] for r in rows[:-len(never)]]
    assert started == sorted(started, key=when)
    desc = all_rows(api, project=[tasks["project"]], only_fields=["id", "started"], order_by=["-started"])
    assert [r["id"] for r in desc[-len(never):]] == [r["id"] for r in never]


def test_range_and_any_datetime_filters(api, tasks):
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id", "created", "started", "status_changed"])
    created = sorted({r["created"] for r in rows}, key=when)
    lo, hi = created[50], created[150]
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"], created=[lo, hi])
    assert {r["id"] for r in got} == {r["id"] for r in rows if when(lo) <= when(r["created"]) <= when(hi)}
    # a None minimum also matches documents where the field is missing (never started)
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"], started=[None, hi])
    assert {r["id"] for r in got} == {r["id"] for r in rows
                                      if r.get("started") is None or when(r["started"]) <= when(hi)}
    changed = sorted({r["status_changed"] for r in rows}, key=when)
    cut = changed[len(changed) // 2]
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"],
                   _any_={"fields": ["status_changed", "last_change"], "datetime": [f">{cut}"]})
    full = {r["id"]: r for r in all_rows(api, project=[tasks["project"]],
                                         only_fields=["id", "status_changed", "last_change"])}
    assert {r["id"] for r in got} == {i for i, r in full.items() if when(r["status_changed"]) > when(cut)
                                      or when(r["last_change"]) > when(cut)}
    got = all_rows(api, project=[tasks["project"]], only_fields=["id"],
                   _any_={"fields": ["name", "comment"], "pattern": "TASK-00[0-4]-"})  # case-insensitive
    assert got and all(tasks["created"][r["id"]]["i"] * 37 % 1000 < 5 for r in got)


def test_list_fields_take_operators_on_any_field(api, tasks):
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id"], status=["__$not", "created"],
                    tags=["-t0"])
    expected = {t for t, c in tasks["created"].items()
                if not c["hidden"] and c["status"] != "created" and c["i"] % 2 == 1}
    assert {r["id"] for r in rows} == expected
    rows = all_rows(api, project=[tasks["project"]], only_fields=["id"], system_tags=["__$any", "alpha", "beta",
                                                                                      "__$nop", None])
    expected = {t for t, c in tasks["created"].items() if not c["hidden"]
                and ({"alpha", "beta"} & set(c["system_tags"]) or not c["system_tags"])}
    assert {r["id"] for r in rows} == expected
    first = sorted(tasks["created"])[:2]
    assert sorted(r["id"] for r in api.call("tasks.get_all", id=first, only_fields=["id"])["tasks"]) == first
    runtime = api.call("tasks.get_all", **{"runtime.version": "9.9"})["tasks"]
    assert runtime == []


def test_status_changes_follow_the_real_state_machine(api, tasks):
    tid = api.call("tasks.create", name="state-machine", type="testing", project=tasks["project"])["id"]
    task = api.call("tasks.get_by_id", task=tid)["task"]
    assert task["status"] == "created" and task["status_changed"] == task["created"]
    assert datetime.fromisoformat(task["created"]).utcoffset().total_seconds() == 0
    assert task["created"].endswith("000+00:00")  # milliseconds, like Mongo, in the real server's JSON
    assert api.error("tasks.completed", task=tid)[:2] == (400, 110)  # created -> completed is not allowed
    assert api.error("tasks.edit", task=tid, name="x")[:2] == (400, 12)  # names need 3 characters
    api.call("tasks.edit", task=tid, script={"entry_point": "a.py", "branch": "main"})
    api.call("tasks.edit", task=tid, script={"entry_point": "b.py"}, output_dest="file:///tmp/out")
    task = api.call("tasks.get_by_id", task=tid)["task"]
    assert task["script"] == {"entry_point": "b.py", "branch": "main"}  # embedded documents merge
    assert task["output"]["destination"] == "file:///tmp/out"
    api.call("tasks.started", task=tid)
    assert api.error("tasks.edit", task=tid, comment="late")[:2] == (400, 110)  # only `created` without force
    before = api.call("tasks.get_by_id", task=tid)["task"]
    done = api.call("tasks.completed", task=tid, status_reason="completed")
    assert done["updated"] == 1 and done["fields"]["status"] == "completed"
    task = api.call("tasks.get_by_id", task=tid)["task"]
    assert when(task["status_changed"]) >= when(before["status_changed"])
    assert task["completed"] and task["last_update"] >= before["last_update"]
    assert api.error("tasks.stopped", task=tid)[:2] == (400, 110)  # completed -> stopped is refused
    api.call("tasks.stopped", task=tid, force=True)
    assert api.call("tasks.get_by_id", task=tid)["task"]["status"] == "stopped"
    api.call("tasks.publish", task=tid)
    assert api.error("tasks.reset", task=tid)[:2] == (400, 110)
    assert api.error("tasks.started", task=tid)[:2] == (400, 110)  # published is final


def test_projects_nested_names_hidden_and_errors(api, tasks):
    leaf = api.call("projects.create", name="deep/er/leaf", description="")["id"]
    names = {p["name"]: p for p in api.call("projects.get_all", name="^deep", search_hidden=True)["projects"]}
    assert set(names) == {"deep", "deep/er", "deep/er/leaf"}
    assert names["deep/er/leaf"]["id"] == leaf and names["deep/er/leaf"]["parent"] == names["deep/er"]["id"]
    status, subcode, _ = api.error("projects.create", name="deep/er", description="")
    assert (status, subcode) == (400, 801)
    api.call("projects.update", project=names["deep/er"]["id"], system_tags=["hidden"])
    visible = {p["name"] for p in api.call("projects.get_all", name="^deep")["projects"]}
    assert visible == {"deep", "deep/er/leaf"}
    # APIClient sends names raw: an unanchored regex matches anywhere
    assert {p["name"] for p in api.call("projects.get_all", name="er/le")["projects"]} == {"deep/er/leaf"}
    paged = api.call("projects.get_all", name="^deep", search_hidden=True, order_by=["-name"], page=1,
                     page_size=1, only_fields=["name"])["projects"]
    assert paged == [{"id": names["deep/er"]["id"], "name": "deep/er"}]
    assert api.error("projects.get_by_id", project="nope")[:2] == (400, 401)
    assert api.error("projects.create")[:2] == (400, 11)
    assert api.error("tasks.create", name="no-type")[:2] == (400, 12)  # schema-required: validation error
    assert api.error("models.get_by_id", model="nope")[:2] == (400, 201)
    assert api.error("tasks.create", name="bad-project", type="training", project="nope")[:2] == (400, 401)
    status, subcode, _ = api.error("models.update_for_task", task=sorted(tasks["created"])[0], uri="x://y")
    assert (status, subcode) == (301, 1)  # gone since API 2.13


def test_reset_and_delete_clean_outputs_like_the_real_server(api, tasks):
    project = tasks["project"]
    parent = api.call("tasks.create", name="cleanup-parent", type="training", project=project)["id"]
    child = api.call("tasks.create", name="cleanup-child", type="training", project=project, parent=parent)["id"]
    api.call("tasks.started", task=parent)
    draft = api.call("models.create", name="draft-out", uri="http://x/d.pt", task=parent, project=project,
                      ready=False)["id"]
    ready = api.call("models.create", name="ready-out", uri="http://x/r.pt", task=parent, project=project,
                     ready=True)["id"]
    api.call("tasks.add_or_update_model", task=parent, name="draft", model=draft, type="output")
    api.call("tasks.add_or_update_artifacts", task=parent, force=True, artifacts=[
        {"key": "out", "type": "custom", "uri": "http://x/o", "mode": "output"},
        {"key": "in", "type": "custom", "uri": "http://x/i", "mode": "input"}])
    api.call("tasks.edit", task=parent, force=True, runtime={"progress": "50"})
    api.add_batch([{"type": "log", "task": parent, "msg": "before reset", "level": "info"}])
    assert api.error("tasks.delete", task=parent)[:2] == (400, 123)  # in_progress needs force
    assert api.error("tasks.reset", task=parent)[:2] == (400, 123)  # a published (ready) output model
    api.call("tasks.reset", task=parent, force=True)
    task = api.call("tasks.get_by_id", task=parent)["task"]
    assert task["status"] == "created" and task["status_reason"] == "reset"
    assert [a["key"] for a in task["execution"]["artifacts"]] == ["in"]
    assert task["models"]["output"] == [] and task["runtime"] == {} and task.get("started") is None
    assert api.error("models.get_by_id", model=draft)[:2] == (400, 201)  # draft output model deleted
    assert api.call("models.get_by_id", model=ready)["model"].get("task") is None  # published: detached
    assert api.call("events.get_task_log", task=parent)["events"] == []
    api.call("tasks.delete", task=parent)  # `created` needs no force
    assert api.error("tasks.get_by_id", task=parent)[:2] == (400, 101)
    assert api.call("tasks.get_by_id", task=child)["task"]["parent"] == "__DELETED__" + parent


def test_output_writes_need_an_updatable_task(api, tasks):
    tid = api.call("tasks.create", name="updatable", type="training", project=tasks["project"])["id"]
    art = [{"key": "a", "type": "custom", "uri": "http://x/a"}]
    api.call("tasks.add_or_update_artifacts", task=tid, artifacts=art)  # created: fine
    api.call("tasks.edit_configuration", task=tid, configuration=[{"name": "c1", "value": "1"},
                                                                  {"name": "c2", "value": "2"}])
    assert api.call("tasks.delete_configuration", task=tid, configuration=["c1", "nope"])["deleted"] == 1
    api.call("tasks.started", task=tid)
    # the real tasks.add_or_update_artifacts always forces: in_progress is fine, later states are not
    api.call("tasks.add_or_update_artifacts", task=tid, artifacts=art + [{**art[0], "key": "b"}])
    assert api.error("tasks.edit_hyper_params", task=tid, hyperparams=[{"section": "Args", "name": "x"}]
                     )[:2] == (400, 110)
    api.call("tasks.completed", task=tid)
    assert api.error("tasks.add_or_update_artifacts", task=tid, artifacts=art, force=True)[:2] == (400, 110)
    # the "properties" section may change in any status (Dataset versions live there)
    api.call("tasks.edit_hyper_params", task=tid, hyperparams=[{"section": "Properties", "name": "version",
                                                                "value": "1.0.0"}])
    params = api.call("tasks.get_hyper_params", tasks=[tid])["params"][0]["hyperparams"]
    assert params == [{"section": "properties", "name": "version", "value": "1.0.0"}]
    assert api.error("tasks.delete_hyper_params", task=tid, hyperparams=[{"section": "properties"},
                     {"section": "properties", "name": "version"}])[:2] == (400, 15)
    task = api.call("tasks.get_by_id", task=tid)["task"]
    assert sorted(a["key"] for a in task["execution"]["artifacts"]) == ["a", "b"]
    assert list(task["configuration"]) == ["c2"]


def test_projects_parent_and_shallow_search(api, tasks):
    top = api.call("projects.create", name="tree", description="")["id"]
    mid = api.call("projects.create", name="tree/mid", description="")["id"]
    leaf = api.call("projects.create", name="tree/mid/leaf", description="")["id"]
    under = api.call("projects.get_all", parent=[top], only_fields=["id"])["projects"]
    assert {p["id"] for p in under} == {mid, leaf}  # any depth below the parent
    direct = api.call("projects.get_all", parent=[top], shallow_search=True, only_fields=["id"])["projects"]
    assert [p["id"] for p in direct] == [mid]
    roots = {p["id"] for p in api.call("projects.get_all", shallow_search=True, only_fields=["id"])["projects"]}
    assert top in roots and mid not in roots and leaf not in roots


def test_project_rename_renames_descendants(api, tasks):
    top = api.call("projects.create", name="renamed-from", description="")["id"]
    api.call("projects.create", name="renamed-from/child/grandchild", description="")
    api.call("projects.create", name="taken", description="")
    assert api.error("projects.update", project=top, name="taken")[:2] == (400, 801)
    api.call("projects.update", project=top, name="renamed-to", description="d")
    names = sorted(p["name"] for p in api.call("projects.get_all", name="^renamed-")["projects"])
    assert names == ["renamed-to", "renamed-to/child", "renamed-to/child/grandchild"]
    assert api.call("projects.get_by_id", project=top)["project"]["description"] == "d"


def test_model_publish_and_delete_follow_the_real_server(api, tasks):
    project = tasks["project"]
    running = api.call("tasks.create", name="model-owner", type="training", project=project)["id"]
    api.call("tasks.started", task=running)
    mid = api.call("models.create", name="owned", uri="http://x/o.pt", task=running, project=project,
                   ready=False)["id"]
    api.call("tasks.add_or_update_model", task=running, name="owned", model=mid, type="output")
    api.call("models.edit", model=mid, comment="edited while draft")
    # publishing the model publishes its task, which an in_progress task refuses without force
    assert api.error("models.set_ready", model=mid)[:2] == (400, 110)
    done = api.call("models.publish_many", ids=[mid, "nope"], publish_task=False)
    assert [s["id"] for s in done["succeeded"]] == [mid] and [f["id"] for f in done["failed"]] == ["nope"]
    assert api.error("models.set_ready", model=mid)[:2] == (400, 203)
    api.call("models.edit", model=mid, comment="ready models stay editable")
    api.call("tasks.completed", task=running)
    second = api.call("models.create", name="second", uri="http://x/s.pt", task=running, project=project,
                      ready=False)["id"]
    published = api.call("models.set_ready", model=second)
    assert published["updated"] == 1 and published["published_task"]["id"] == running
    assert api.call("tasks.get_by_id", task=running)["task"]["status"] == "published"
    user = api.call("tasks.create", name="model-user", type="inference", project=project,
                    models={"input": [{"name": "in", "model": mid}]})["id"]
    assert api.error("models.delete", model=mid)[:2] == (400, 205)  # used as input
    api.call("tasks.edit", task=user, models={"input": []})
    assert api.error("models.delete", model=mid)[:2] == (400, 206)  # its task is published
    api.call("models.delete", model=mid, force=True)
    owner = api.call("tasks.get_by_id", task=running)["task"]
    assert [m["model"] for m in owner["models"]["output"]] == ["__DELETED__" + mid]
    assert owner["output"]["error"].startswith("model deleted on")
