"""Real clearml-server 1.9.2 (API 2.23) behaviour the local server reproduces: public rows, the 429 switch, the
version it claims, model defaults, numeric hyperparameter ordering, sub-project options, project deletion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import Credential, LocalServer  # noqa: E402
from clearml_assets.local_server.throttle import ENV_VAR, Throttle  # noqa: E402


@pytest.fixture
def two_companies(tmp_path: Path):
    a = Credential("KEYA" + "A" * 16, "secret-a-" + "x" * 30, "companyA", "alice")
    b = Credential("KEYB" + "B" * 16, "secret-b-" + "y" * 30, "companyB", "bob")
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0, credentials=[a, b])
    server.start()
    try:
        yield server, RawApi(server.info, a.access_key, a.secret_key), RawApi(server.info, b.access_key, b.secret_key)
    finally:
        server.stop()


@pytest.fixture
def api(clearml_server):
    return RawApi(clearml_server.info)


def test_public_rows_are_listed_for_every_company_and_writable_by_none(two_companies):
    _, alice, bob = two_companies
    task = alice.call("tasks.create", name="shared run", type="training")["id"]
    model = alice.call("models.create", name="shared model", uri="http://x/m.pt")["id"]
    project = alice.call("projects.create", name="shared project", description="")["id"]
    assert bob.call("tasks.get_all", id=[task])["tasks"] == []
    # only the owner's rows become public; a public row goes private only for the company it came from
    assert bob.error("tasks.make_public", ids=[task])[:2] == (400, 101)
    assert alice.error("tasks.make_private", ids=[task])[:2] == (400, 101)
    assert alice.call("tasks.make_public", ids=[task]) == {"updated": 1}
    assert alice.call("models.make_public", ids=[model]) == {"updated": 1}
    assert alice.call("projects.make_public", ids=[project]) == {"updated": 1}
    # public rows (company "") come back from get_all/get_by_id of any company, as on the real server
    listed = bob.call("tasks.get_all", only_fields=["id", "company"])["tasks"]
    assert [t for t in listed if t["id"] == task] == [{"id": task, "company": ""}]
    assert bob.call("tasks.get_by_id", task=task)["task"]["id"] == task
    assert [m["id"] for m in bob.call("models.get_all")["models"]] == [model]
    assert [p["id"] for p in bob.call("projects.get_all")["projects"]] == [project]
    # ... but nobody may change them: tasks/projects 403/21, models are an invalid id (get_company_model_by_id)
    for caller in (alice, bob):
        assert caller.error("tasks.edit", task=task, comment="x")[:2] == (403, 21)
        assert caller.error("projects.update", project=project, description="x")[:2] == (403, 21)
        assert caller.error("models.update", model=model, comment="x")[:2] == (400, 201)
    assert bob.error("tasks.make_private", ids=[task])[:2] == (400, 101)
    assert alice.call("tasks.make_private", ids=[task]) == {"updated": 1}
    assert bob.call("tasks.get_all", id=[task])["tasks"] == []
    alice.call("tasks.edit", task=task, comment="mine again")


def test_429_switch_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "next=2,retry_after=3,only=tasks.*")
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0)
    server.start()
    try:
        api = RawApi(server.info)  # auth.login is not in "only": it passes
        for _ in range(2):
            resp = api.raw("tasks.get_all")
            assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
            assert resp.json()["meta"]["result_code"] == 429
        assert api.raw("tasks.get_all").status_code == 200
        assert server.store.throttle.throttled == 2
        # in process: armed and disarmed on the running server; a throttled write changes nothing
        server.store.throttle.arm(every=2)
        codes = [api.raw("tasks.create", name="throttled", type="training").status_code for _ in range(4)]
        assert codes == [200, 429, 200, 429]
        server.store.throttle.disarm()
        assert len(api.call("tasks.get_all", name="^throttled$")["tasks"]) == 2
        assert requests.get(f"{server.info.api_host}/debug.ping", timeout=5).status_code == 200
    finally:
        server.stop()


def test_429_switch_percent_is_reproducible_and_bad_specs_are_refused():
    first = Throttle.from_spec("percent=50,seed=7")
    second = Throttle.from_spec("percent=50,seed=7")
    runs = [[t.check("tasks.get_all") for _ in range(40)] for t in (first, second)]
    assert runs[0] == runs[1] and 5 < sum(r is not None for r in runs[0]) < 35
    assert Throttle.from_spec("next=1").check("debug.ping") is None  # readiness checks never throttled
    assert Throttle.from_spec(None).active is False
    for bad in ("often", "next=lots", "percent=150", "burst=3"):
        with pytest.raises(ValueError, match=ENV_VAR):
            Throttle.from_spec(bad)


def test_server_version_is_the_newest_release(api, clearml_server):
    info = api.call("server.info")
    assert (info["version"], info["api_version"]) == ("2.3.0", "2.34")  # 1.9.2 on request: test_server_newest


def test_models_follow_the_real_defaults_and_update_rules(api):
    task = api.call("tasks.create", name="trainer", type="training")["id"]
    # created ready unless told otherwise; metadata given as an object (the schema's form) is stored
    model = api.call("models.create", name="weights", uri="http://x/a.pt", task=task,
                     metadata={"acc": {"key": "acc", "type": "float", "value": "0.9"}})["id"]
    doc = api.call("models.get_by_id", model=model)["model"]
    assert doc["ready"] is True and doc["metadata"] == {"acc": {"key": "acc", "type": "float", "value": "0.9"}}
    # update stores the uri and raises (never lowers) the task's last_iteration
    api.call("models.update", model=model, uri="http://x/b.pt", task=task, iteration=1000)
    api.call("models.update", model=model, task=task, iteration=500)
    assert api.call("models.get_by_id", model=model)["model"]["uri"] == "http://x/b.pt"
    assert api.call("tasks.get_by_id", task=task)["task"]["last_iteration"] == 1000
    stats = api.call("models.get_all_ex", id=[model], include_stats=True)["models"][0]["stats"]
    assert stats == {"labels_count": 0}
    # models.update_for_task is gone after API 2.13 (the SDK 2.1.12 speaks 2.23)
    assert api.error("models.update_for_task", task=task, uri="http://x/c.pt")[:2] == (301, 1)


def test_hyperparameter_order_is_numeric_and_project_name_joins(api):
    project = api.call("projects.create", name="ordering", description="")["id"]
    for value in ("10", "9", "100", "2"):
        api.call("tasks.create", name=f"lr {value}", type="training", project=project,
                 hyperparams={"Args": {"lr": {"section": "Args", "name": "lr", "value": value}}})
    rows = api.call("tasks.get_all_ex", project=[project], order_by=["hyperparams.Args.lr.value"],
                    only_fields=["name", "project.name"])["tasks"]
    assert [r["name"] for r in rows] == ["lr 2", "lr 9", "lr 10", "lr 100"]
    assert rows[0]["project"] == {"id": project, "name": "ordering"}


def test_subproject_options_types_and_project_deletion(api):
    top = api.call("projects.create", name="top", description="")["id"]
    child = api.call("projects.create", name="top/child", description="")["id"]
    in_top = api.call("tasks.create", name="in top", type="training", project=top)["id"]
    in_child = api.call("tasks.create", name="in child", type="testing", project=child)["id"]
    assert [t["id"] for t in api.call("tasks.get_all_ex", project=[top])["tasks"]] == [in_top]
    found = api.call("tasks.get_all_ex", project=[top], include_subprojects=True)["tasks"]
    assert {t["id"] for t in found} == {in_top, in_child}
    assert api.call("tasks.get_types", projects=[child])["types"] == ["testing"]
    stats = api.call("projects.get_all_ex", id=[top], include_stats=True, check_own_contents=True)["projects"][0]
    assert stats["own_tasks"] == 1 and stats["stats"]["active"]["total_tasks"] == 2
    assert [p["name"] for p in stats["sub_projects"]] == ["top/child"]
    assert api.call("projects.validate_delete", project=top) == {  # 1.9.2 counts the first four only
        "tasks": 2, "non_archived_tasks": 2, "models": 0, "non_archived_models": 0, "pipelines": 0, "datasets": 0,
        "reports": 0, "non_archived_reports": 0}
    assert api.error("projects.delete", project=top)[:2] == (400, 402)
    # force without delete_contents: the tasks stay, detached from the deleted projects
    res = api.call("projects.delete", project=top, force=True)
    assert (res["deleted"], res["disassociated_tasks"]) == (2, 2)
    assert api.call("tasks.get_by_id", task=in_child)["task"]["project"] is None


def test_task_types_cover_sub_projects_and_auth_only_users_are_not_listed(tmp_path: Path):
    # clearml-server's get_task_types: projects include their sub-projects; without projects, hidden tasks are left
    # out. A key pair with no user record (the upstream tests' "user_auth_only") signs in and owns what it
    # creates, but users.get_all_ex does not list it.
    owner = Credential("KEYO" + "O" * 16, "secret-o-" + "x" * 30, "acme", "owner")
    auth_only = Credential("KEYU" + "U" * 16, "secret-u-" + "y" * 30, "acme", "robot", auth_only=True)
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0, credentials=[owner, auth_only])
    server.start()
    try:
        api, robot = RawApi(server.info, owner.access_key, owner.secret_key), \
            RawApi(server.info, auth_only.access_key, auth_only.secret_key)
        child = robot.call("projects.create", name="Agg/child", description="")["id"]
        parent = api.call("projects.get_all_ex", name="^Agg$")["projects"][0]["id"]
        api.call("tasks.create", name="tester", type="testing", project=child)
        robot_task = robot.call("tasks.create", name="robot run", type="inference", project=child)["id"]
        api.call("tasks.create", name="hidden run", type="qc", system_tags=["hidden"])
        assert api.call("tasks.get_types", projects=[parent])["types"] == ["inference", "testing"]
        assert api.call("tasks.get_types")["types"] == ["inference", "testing"]
        assert api.call("tasks.get_all_ex", id=[robot_task])["tasks"][0]["user"] == {"id": "robot"}
        users = api.call("users.get_all_ex", active_in_projects=[parent])["users"]
        assert [u["id"] for u in users] == ["owner"]
        assert api.error("users.get_by_id", user="robot")[:2] == (400, 300)
    finally:
        server.stop()
