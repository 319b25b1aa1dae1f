"""Every endpoint of the local server, swept: no token means 401, and another company's token, given the
ids of one company's project/task/model and a body that would satisfy the endpoint, neither sees nor
changes anything of that company."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import Credential, LocalServer  # noqa: E402
from clearml_assets.local_server import services  # noqa: E402,F401  (registers the endpoints)
from clearml_assets.local_server.core.registry import ENDPOINTS, UNAUTHENTICATED  # noqa: E402

# Words only company A wrote; none may appear in anything B gets back.
MARKERS = ("alpha-project", "alpha-task", "alpha-model", "alpha log line", "alpha-artifact",
           "alpha-hyper-value", "alpha-config-value", "alpha-metadata-value", "alpha-plot", "alpha-image",
           "alpha-description", "alpha-artifact-uri", "alpha-image-url")

A = Credential("KEYA" + "A" * 16, "secret-a-" + "x" * 30, "companyA", "alice")
B = Credential("KEYB" + "B" * 16, "secret-b-" + "y" * 30, "companyB", "bob")


@pytest.fixture(scope="module")
def two_companies(tmp_path_factory):
    with LocalServer(tmp_path_factory.mktemp("sweep") / "srv", api_port=0, files_port=0,
                     credentials=[A, B]) as server:
        yield server


def test_every_endpoint_needs_a_token(two_companies):
    info = two_companies.info
    protected = sorted(set(ENDPOINTS) - UNAUTHENTICATED)
    assert len(protected) > 60
    for name in protected:
        for headers in ({}, {"Authorization": "Bearer x.y.z"}, {"Authorization": "Digest abc"}):
            resp = requests.post(f"{info.api_host}/v999.0/{name}", json={"task": "t"}, headers=headers, timeout=10)
            assert resp.status_code == 401 and resp.json()["meta"]["result_code"] == 401, (name, headers)
    # login.supported_modes answers either way (the real schema's `authorize: null`): it tells the web app whether
    # the caller is signed in, and nothing else
    assert UNAUTHENTICATED == {"auth.login", "debug.ping", "login.supported_modes"}
    files = info.files_host
    for method in ("GET", "POST", "PUT", "DELETE", "HEAD"):
        resp = requests.request(method, f"{files}/p/t.1/a.txt", data=b"x", timeout=10)
        assert resp.status_code in (401, 405), method  # 405: a method the fileserver does not route at all
    assert requests.get(f"{files}/p/t.1/a.txt", timeout=10).status_code == 401
    assert requests.post(f"{files}/", files={"p/x.txt": ("x.txt", b"x")}, timeout=10).status_code == 401


def _seed_company_a(api: RawApi) -> dict[str, str]:
    project = api.call("projects.create", name="alpha-project", description="alpha-description")["id"]
    task = api.call("tasks.create", name="alpha-task", type="training", project=project,
                    comment="alpha-description")["id"]
    api.call("tasks.edit_hyper_params", task=task,
             hyperparams=[{"section": "General", "name": "p", "value": "alpha-hyper-value"}])
    api.call("tasks.edit_configuration", task=task,
             configuration=[{"name": "cfg", "value": "alpha-config-value", "type": "yaml"}])
    api.call("tasks.add_or_update_artifacts", task=task,
             artifacts=[{"key": "alpha-artifact", "type": "custom", "mode": "output",
                         "uri": "http://files/alpha-artifact-uri.bin"}])
    model = api.call("models.create", name="alpha-model", uri="http://files/alpha-model.pt", task=task,
                     project=project)["id"]
    api.call("models.add_or_update_metadata", model=model,
             metadata=[{"key": "k", "type": "str", "value": "alpha-metadata-value"}])
    api.call("tasks.add_or_update_model", task=task, name="alpha-model", model=model, type="output")
    api.add_batch([
        {"type": "log", "task": task, "msg": "alpha log line", "level": "info"},
        {"type": "training_stats_scalar", "task": task, "metric": "loss", "variant": "v", "iter": 1, "value": 2.5},
        {"type": "plot", "task": task, "metric": "alpha-plot", "variant": "v", "iter": 1,
         "plot_str": json.dumps({"data": [], "layout": {"title": "alpha-plot"}})},
        {"type": "training_debug_image", "task": task, "metric": "alpha-image", "variant": "v", "iter": 1,
         "url": "http://files/alpha-image-url.png"},
        {"type": "training_stats_scalar", "model_event": True, "task": model, "metric": "mloss", "variant": "v",
         "iter": 1, "value": 1.0},
    ])
    return {"project": project, "task": task, "model": model}


def _view_of_a(api: RawApi, ids: dict[str, str]) -> str:
    """Everything company A can read about its own documents, as one comparable text."""
    task, project, model = ids["task"], ids["project"], ids["model"]
    view = {
        "task": api.call("tasks.get_by_id", task=task)["task"],
        "project": api.call("projects.get_by_id", project=project)["project"],
        "model": api.call("models.get_by_id", model=model)["model"],
        "tasks": api.call("tasks.get_all", search_hidden=True)["tasks"],
        "models": api.call("models.get_all")["models"],
        "log": api.call("events.get_task_log", task=task)["events"],
        # per type: a mixed page reaching log events (no iter) is a 500 on the real server
        "events": api.call("events.get_task_events", task=task, event_type="training_stats_scalar")["events"],
        "plots": api.call("events.get_task_plots", task=task)["plots"],
        "hyper": api.call("tasks.get_hyper_params", tasks=[task]),
        "config": api.call("tasks.get_configurations", tasks=[task]),
    }
    for volatile in ("last_update", "last_change", "last_worker", "last_iteration"):
        for doc in (view["task"], view["project"], view["model"], *view["tasks"], *view["models"]):
            doc.pop(volatile, None)
    return json.dumps(view, sort_keys=True)


def _hostile_bodies(ids: dict[str, str]) -> list[dict]:
    """Bodies naming A's documents in every field an endpoint may read them from, plus whatever else
    endpoints require, so that each handler gets as far as it can (two variants where fields of the same
    name mean different things to different endpoints)."""
    task, project, model = ids["task"], ids["project"], ids["model"]
    first = {
        "task": task, "tasks": [task], "id": [task, project, model], "ids": [task, project, model],
        "project": project, "projects": [project], "model": model, "models": [model],
        "name": "stolen", "comment": "stolen", "description": "stolen", "force": True, "delete_contents": True,
        "metrics": [{"task": task, "metric": "alpha-image"}, {"task": task, "metric": "loss"}],
        "metric": "alpha-image", "variant": "v", "iteration": 1, "scroll_id": None,
        "hyperparams": [{"section": "General", "name": "p", "value": "stolen"}],
        "configuration": [{"name": "cfg", "value": "stolen"}], "configuration_names": ["cfg"],
        "artifacts": [{"key": "alpha-artifact", "type": "custom", "mode": "output", "uri": "stolen"}],
        "metadata": [{"key": "k", "type": "str", "value": "stolen"}], "keys": ["k"],
        "requirements": {"pip": "stolen"}, "uri": "stolen", "ready": True, "status_reason": "stolen",
        "type": "output", "search_hidden": True, "only_fields": None, "allow_public": True,
        "include_stats": True, "check_owner": False,
    }
    second = {**first, "type": "training", "event_type": "training_debug_image", "size": 100,
              "metric": {"metric": "loss", "variants": ["v"]}, "msg": "stolen", "iter": 3, "value": 1.0}
    del second["scroll_id"]
    third = {**second, "event_type": "log", "type": "log", "metric": "loss", "id": None, "ids": None}
    return [first, second, third]


@pytest.mark.slow
def test_another_company_can_neither_see_nor_change_anything(two_companies):
    api_a = RawApi(two_companies.info, A.access_key, A.secret_key)
    api_b = RawApi(two_companies.info, B.access_key, B.secret_key)
    ids = _seed_company_a(api_a)
    before = _view_of_a(api_a, ids)
    assert all(marker in before for marker in ("alpha-task", "alpha log line", "alpha-hyper-value"))

    bodies = _hostile_bodies(ids)
    echoed = json.dumps(bodies)  # words B itself sent may come back (debug.ping echoes the body)
    markers = [m for m in MARKERS if m not in echoed]
    assert "alpha log line" in markers and "alpha-image-url" in markers
    answered: dict[str, int] = {}
    # signing out (login.logout, auth.logout) revokes the caller's own token: swept last, below
    for name in sorted(set(ENDPOINTS) - {"auth.login", "login.logout", "auth.logout"}):
        for variant, body in enumerate(bodies):  # at the newest API, where every endpoint exists
            resp = api_b.session.post(f"{api_b.info.api_host}/v999.0/{name}", json=body, timeout=60)
            answered[f"{name}#{variant}"] = resp.status_code
            text = resp.text
            leaked = [m for m in markers if m in text]
            assert not leaked, f"{name} (body {variant}) returned company A's {leaked} to company B"
            assert resp.status_code != 500, (name, variant, text[:500])
    # events.add_batch in the SDK's own shape, and one event per call
    for event in ({"type": "log", "task": ids["task"], "msg": "stolen"},
                  {"type": "training_stats_scalar", "task": ids["task"], "metric": "m", "variant": "v",
                   "iter": 2, "value": 9.0},
                  {"type": "training_stats_scalar", "model_event": True, "task": ids["model"], "metric": "m",
                   "variant": "v", "iter": 2, "value": 9.0}):
        assert api_b.add_batch_raw([event]).status_code == 400
        assert api_b.raw("events.add", event).status_code == 400

    after = _view_of_a(api_a, ids)
    assert "stolen" not in after
    assert after == before, "company B's calls changed company A's documents"
    # B's own documents from the sweep stay B's, and A still sees none of them
    assert all(t["name"] != "stolen" for t in api_a.call("tasks.get_all", search_hidden=True)["tasks"])
    # the sweep did reach the handlers: every endpoint answered something other than 401 or 404
    assert sum(code not in (401, 404) for code in answered.values()) == len(answered), \
        sorted(k for k, v in answered.items() if v in (401, 404))
    # signing out revokes B's own token, and only that
    for name in ("login.logout", "auth.logout"):
        api_b = RawApi(two_companies.info, B.access_key, B.secret_key)
        assert api_b.raw(name).status_code == 200
        assert api_b.raw("tasks.get_all").status_code == 401
    assert api_a.call("tasks.get_all", id=[ids["task"]])["tasks"]


def test_oversized_request_bodies_are_refused(two_companies, monkeypatch):
    from clearml_assets.local_server import app

    monkeypatch.setattr(app, "MAX_BODY_BYTES", 64 * 1024)
    api = RawApi(two_companies.info, A.access_key, A.secret_key)
    url = f"{two_companies.info.api_host}/v2.23/tasks.get_all"
    def chunked():  # no Content-Length: the server must count what it reads
        for _ in range(4096):
            yield b" " * 1024

    refused = 0
    for body in (b" " * (65 * 1024), chunked()):
        try:
            resp = api.session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        except requests.ConnectionError:  # the server may answer and close before the client finished sending
            continue
        assert resp.status_code == 413 and "too large" in resp.json()["meta"]["result_msg"]
        refused += 1
    assert refused >= 1
    assert api.call("tasks.get_all", page_size=1) is not None  # the server is still serving


def test_a_new_data_folder_and_its_secrets_are_the_owners_only(tmp_path):
    data_dir = tmp_path / "fresh" / "srv"
    with LocalServer(data_dir, api_port=0, files_port=0) as server:
        RawApi(server.info).call("projects.create", name="private", description="")
        assert data_dir.stat().st_mode & 0o777 == 0o700
        for secret in ("credentials.json", "jwt.key"):
            assert (data_dir / secret).stat().st_mode & 0o777 == 0o600, secret
