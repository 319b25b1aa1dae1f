"""The local server at clearml-server's newest release (2.3.0, API 2.34) and, on request, at 1.9.2 (API 2.23).

What the real server does and the tests pin: ``server.info`` and the token say which release it is; an endpoint
added after the requested version (or after the release's newest API) does not exist; behaviour that changed
between the releases follows the release (model events keep their iterations after 1.9.2); reports live as hidden
``report`` tasks under hidden ``.reports`` projects; the web session (``clearml_token_basic``) is set by
``auth.login`` through the web port's ``/api``, used by later calls, and revoked by signing out.
"""

from __future__ import annotations

import base64
from pathlib import Path
import jwt
import pytest
import requests

from clearml_assets.cli import main as cli_main
from clearml_assets.local_server import LocalServer, start_local_server_process
from clearml_assets.local_server.core.versions import SERVER_VERSION_ENV
from clearml_assets.local_server.webapp import WEB_APP_ENV, WebAppBuildError, check_web_app_build

from server_api import json_lines


class Api:
    """Raw calls at any path version (``None``: no version, the newest)."""

    def __init__(self, server: LocalServer):
        self.info = server.info
        resp = requests.get(f"{self.info.api_host}/auth.login", auth=(self.info.access_key, self.info.secret_key),
                            timeout=30)
        assert resp.status_code == 200, resp.text
        self.token = resp.json()["data"]["token"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def raw(self, endpoint: str, version: str | None = None, **fields) -> requests.Response:
        prefix = f"/v{version}" if version else ""
        return self.session.post(f"{self.info.api_host}{prefix}/{endpoint}", json=fields, timeout=60)

    def call(self, endpoint: str, version: str | None = None, **fields) -> dict:
        resp = self.raw(endpoint, version, **fields)
        assert resp.status_code == 200, (endpoint, resp.status_code, resp.text[:500])
        return resp.json()["data"]

    def add_batch(self, events: list[dict]) -> None:
        resp = self.session.post(f"{self.info.api_host}/v2.23/events.add_batch", data=json_lines(events),
                                 headers={"Content-Type": "application/json-lines"}, timeout=60)
        assert resp.status_code == 200, resp.text


@pytest.fixture(params=["2.3.0", "1.9.2"])
def release_server(request, tmp_path):
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0, web_port=None,
                         server_version=request.param).start()
    try:
        yield request.param, server
    finally:
        server.stop()


@pytest.fixture
def newest(tmp_path):
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0, web_port=None).start()
    try:
        yield Api(server)
    finally:
        server.stop()


def test_server_info_and_the_token_say_which_release_it_is(release_server):
    release, server = release_server
    api = Api(server)
    expected = {"2.3.0": "2.34", "1.9.2": "2.23"}[release]
    info = api.call("server.info")
    assert (info["version"], info["api_version"]) == (release, expected)
    claims = jwt.decode(api.token, options={"verify_signature": False})
    assert (claims["server_version"], claims["api_version"]) == (release, expected)


def test_the_newest_release_is_the_default_and_the_environment_chooses(tmp_path, monkeypatch):
    monkeypatch.setenv(SERVER_VERSION_ENV, "1.9.2")
    with LocalServer(tmp_path / "a", api_port=0, files_port=0, web_port=None) as server:
        assert Api(server).call("server.info")["version"] == "1.9.2"
    monkeypatch.delenv(SERVER_VERSION_ENV)
    with LocalServer(tmp_path / "b", api_port=0, files_port=0, web_port=None) as server:
        assert Api(server).call("server.info")["version"] == "2.3.0"
    with pytest.raises(ValueError, match="known releases: 1.9.2, 2.3.0"):
        LocalServer(tmp_path / "c", api_port=0, files_port=0, web_port=None, server_version="1.17.0")


def test_an_endpoint_exists_from_its_version_on_and_only_in_releases_that_have_it(release_server):
    release, server = release_server
    api = Api(server)
    api.call("tasks.create", name="task one", type="training")
    # projects.get_user_names came with API 2.26
    assert api.raw("projects.get_user_names", "2.23").status_code == 404
    newest = api.raw("projects.get_user_names", "999.0")
    if release == "1.9.2":
        assert newest.status_code == 404
        assert "Unable to find endpoint for name projects.get_user_names" in newest.json()["meta"]["result_msg"]
    else:
        assert newest.status_code == 200
        assert newest.json()["data"]["users"] == [{"id": "local-user", "name": "local-user"}]
        assert api.raw("projects.get_user_names", "2.26").status_code == 200
    # reports.* are 2.23 endpoints: both releases serve them
    assert api.raw("reports.get_tags", "2.23").status_code == 200


def test_model_events_keep_their_iterations_after_1_9_2(release_server):
    release, server = release_server
    api = Api(server)
    model = api.call("models.create", name="model one", uri="file:///m.pt", labels={}, ready=False)["id"]
    api.add_batch([{"type": "training_stats_scalar", "model_event": True, "task": model, "iter": i, "metric": "loss",
                    "variant": "train", "value": 1.0 / (i + 1), "timestamp": 1_700_000_000_000 + i}
                   for i in (3, 7)])
    data = api.call("events.scalar_metrics_iter_histogram", "2.23", task=model, model_events=True)
    x = data["loss"]["train"]["x"]
    assert x == ([3, 7] if release == "2.3.0" else [0])


def test_a_report_is_a_hidden_report_task_under_a_hidden_reports_project(newest):
    api = newest
    project = api.call("projects.create", name="analysis", description="")["id"]
    created = api.call("reports.create", name="weekly", comment="numbers", tags=["q3"], project=project)
    report = created["id"]
    task = api.call("tasks.get_all_ex", id=[report], only_fields=["type", "system_tags", "project.name"])["tasks"][0]
    assert task["type"] == "report" and set(task["system_tags"]) == {"hidden", "reports"}
    assert task["project"]["name"] == "analysis/.reports"
    reports_project = api.call("projects.get_all_ex", id=[created["project_id"]], search_hidden=True)["projects"][0]
    assert set(reports_project["system_tags"]) == {"hidden", "reports"}
    assert api.call("projects.get_all_ex", name=r"^analysis/\.reports$")["projects"] == []  # hidden
    assert api.call("reports.update", task=report, report="# Week 3\nall good")["updated"] == 1
    assert api.call("reports.get_tags")["tags"] == ["q3"]
    listed = api.call("reports.get_all_ex", project=project, only_fields=["name", "report", "user.name"])["tasks"]
    assert [(r["name"], r["report"], r["user"]["name"]) for r in listed] == [("weekly", "# Week 3\nall good",
                                                                            "local-user")]
    api.call("reports.publish", task=report)
    refused = api.raw("reports.update", task=report, report="changed after publishing")
    assert refused.status_code == 400 and refused.json()["meta"]["result_subcode"] == 110  # invalid task status
    moved = api.call("reports.move", task=report, project_name="elsewhere")["project_id"]
    assert api.call("projects.get_by_id", project=moved)["project"]["name"] == "elsewhere/.reports"
    # the emptied reports project is gone with its last report
    assert api.call("projects.get_all_ex", id=[created["project_id"]], search_hidden=True)["projects"] == []
    assert api.call("reports.delete", task=report, force=True)["deleted"] == 1


def test_the_web_session_cookie_is_set_used_and_revoked(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "index.html").write_text("<!doctype html><html><body><sm-root></sm-root></body></html>")
    (build / "main-TEST.js").write_text("console.log('app')")
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0, web_port=0, web_app=build).start()
    try:
        info = server.info
        web = info.web_host
        assert requests.get(f"{web}/configuration.json", timeout=30).json() == {
            "apiBaseUrl": "/api", "fileBaseUrl": info.files_host, "useFilesProxy": True}
        assert "<sm-root>" in requests.get(f"{web}/projects/abc/tasks", timeout=30).text  # a route of the app
        (build / "widgets").mkdir()
        (build / "widgets" / "index.html").write_text("<html><sm-widgets></sm-widgets></html>")
        assert "<sm-widgets>" in requests.get(f"{web}/widgets/?type=scalar&tasks=x", timeout=30).text
        assert requests.get(f"{web}/chunk-MISSING.js", timeout=30).status_code == 404
        assert requests.get(f"{web}/../server/credentials.json", timeout=30).status_code == 404
        modes = requests.post(f"{web}/api/v999.0/login.supported_modes", json={}, timeout=30).json()["data"]
        assert modes["basic"]["enabled"] is True and modes["authenticated"] is False
        basic = base64.b64encode(f"{info.access_key}:{info.secret_key}".encode()).decode()
        login = requests.post(f"{web}/api/v999.0/auth.login", headers={"Authorization": f"Basic {basic}"},
                              json={}, timeout=30)
        assert login.status_code == 200
        set_cookie = login.headers["set-cookie"]
        assert "clearml_token_basic=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        token = login.cookies["clearml_token_basic"]
        jar = {"clearml_token_basic": token}
        me = requests.post(f"{web}/api/v999.0/users.get_current_user", cookies=jar, json={}, timeout=30)
        assert me.status_code == 200 and me.json()["data"]["user"]["id"] == "local-user"
        modes = requests.post(f"{web}/api/v999.0/login.supported_modes", cookies=jar, json={}, timeout=30)
        assert modes.json()["data"]["authenticated"] is True
        out = requests.post(f"{web}/api/v999.0/login.logout", cookies=jar, json={}, timeout=30)
        assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
        for url, kwargs in ((f"{web}/api/v999.0/users.get_current_user", {"cookies": jar}),
                            (f"{info.api_host}/users.get_current_user",
                             {"headers": {"Authorization": f"Bearer {token}"}})):
            assert requests.post(url, json={}, timeout=30, **kwargs).status_code == 401
    finally:
        server.stop()


def test_a_folder_that_is_not_a_web_app_build_is_refused_saying_how_to_get_one(tmp_path):
    with pytest.raises(WebAppBuildError, match="does not exist.*clearml-web"):
        check_web_app_build(tmp_path / "nowhere")
    (tmp_path / "index.html").write_text("<html>not the app</html>")
    with pytest.raises(WebAppBuildError, match="not a ClearML web app build"):
        check_web_app_build(tmp_path)
    (tmp_path / "index.html").write_text("<html><sm-root></sm-root></html>")
    assert check_web_app_build(tmp_path / "." ) == tmp_path.resolve()


def _fake_build(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<!doctype html><html><body><sm-root></sm-root></body></html>")
    return folder


def test_the_web_app_setting_reaches_the_server_the_local_account_starts(tmp_path, monkeypatch):
    monkeypatch.setenv(WEB_APP_ENV, str(_fake_build(tmp_path / "build")))
    proc = start_local_server_process(tmp_path / "server", web_port=0)  # how the `local` account starts one
    try:
        config = requests.get(f"{proc.info.web_host}/configuration.json", timeout=30).json()
        assert config["apiBaseUrl"] == "/api"
        assert requests.get(f"{proc.info.web_host}/healthz", timeout=30).text == "ok"
    finally:
        proc.stop()


def test_the_command_line_refuses_a_folder_that_is_not_a_build(tmp_path, capsys):
    code = cli_main(["local-server", "--data-dir", str(tmp_path / "server"), "--web-port", "0", "--api-port", "0",
                     "--files-port", "0", "--web-app", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "--web-app" in err
