"""Loopback binding, tokens, unknown endpoints, company isolation, fileserver confinement, fail-fast keys, CLI."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import psutil
import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
from conftest import sdk_env  # noqa: E402
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import Credential, LocalServer, free_port  # noqa: E402


def assert_envelope(resp: requests.Response, code: int) -> dict:
    assert resp.status_code == code
    meta = resp.json()["meta"]
    assert meta["result_code"] == code and meta["result_msg"]
    assert {"id", "trx", "endpoint", "result_subcode", "error_stack"} <= set(meta)
    return meta


def test_binds_loopback_by_default(clearml_server):
    assert clearml_server.host == "127.0.0.1"
    ports = {clearml_server.api_port, clearml_server.files_port}
    listening = [c for c in psutil.Process().net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    assert {c.laddr.port for c in listening} == ports
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_missing_and_invalid_tokens_get_401_envelope(clearml_server):
    info = clearml_server.info
    url = f"{info.api_host}/v2.23/tasks.get_all"
    assert_envelope(requests.post(url, json={}, timeout=10), 401)
    assert_envelope(requests.post(url, json={}, headers={"Authorization": "Bearer not-a-jwt"}, timeout=10), 401)
    forged = jwt.encode({"identity": {"company": "local", "user": "x"}, "exp": time.time() + 600},
                        "another-signing-key-of-32-bytes-or-more", algorithm="HS256")
    assert_envelope(requests.post(url, json={}, headers={"Authorization": f"Bearer {forged}"}, timeout=10), 401)
    assert_envelope(requests.get(f"{info.api_host}/auth.login", auth=(info.access_key, "wrong"), timeout=10), 401)
    assert_envelope(requests.get(f"{info.api_host}/auth.login", auth=("NOSUCHKEY", info.secret_key),
                                 timeout=10), 401)
    assert_envelope(requests.get(f"{info.api_host}/auth.login", timeout=10), 401)
    api = RawApi(info)
    assert api.raw("tasks.get_all").status_code == 200


def test_unknown_endpoint_is_404_never_200(clearml_server):
    api = RawApi(clearml_server.info)
    for name in ("tasks.no_such_action", "nosuch.get_all"):
        meta = assert_envelope(api.raw(name), 404)
        assert "Unable to find endpoint" in meta["result_msg"]
    resp = requests.post(f"{clearml_server.info.api_host}/v2.23/tasks.frobnicate", json={}, timeout=10)
    assert resp.status_code == 404 and resp.json()["meta"]["result_code"] == 404


def test_companies_are_isolated(tmp_path):
    a = Credential("KEYA" + "A" * 16, "secret-a-" + "x" * 30, "companyA", "alice")
    b = Credential("KEYB" + "B" * 16, "secret-b-" + "y" * 30, "companyB", "bob")
    with LocalServer(tmp_path / "srv", api_port=0, files_port=0, credentials=[a, b]) as server:
        api_a = RawApi(server.info, a.access_key, a.secret_key)
        api_b = RawApi(server.info, b.access_key, b.secret_key)
        project = api_a.call("projects.create", name="secret-project", description="")["id"]
        task = api_a.call("tasks.create", name="secret-task", type="training", project=project)["id"]
        model = api_a.call("models.create", name="secret-model", uri="http://x/m.pt", task=task)["id"]
        api_a.add_batch([{"type": "log", "task": task, "msg": "a's log", "level": "info"},
                         {"type": "training_stats_scalar", "task": task, "metric": "m", "variant": "v",
                          "iter": 1, "value": 1.5}])
        assert [t["id"] for t in api_a.call("tasks.get_all")["tasks"]] == [task]

        assert api_b.call("tasks.get_all", search_hidden=True)["tasks"] == []
        assert api_b.call("tasks.get_all", id=[task])["tasks"] == []
        assert not [p for p in api_b.call("projects.get_all", search_hidden=True)["projects"] if p["id"] == project]
        assert api_b.call("models.get_all")["models"] == []
        assert api_b.error("tasks.get_by_id", task=task)[0] == 400
        assert api_b.error("projects.get_by_id", project=project)[0] == 400
        assert api_b.error("models.get_by_id", model=model)[0] == 400
        for endpoint, fields in [("events.get_task_log", {"task": task}),
                                 ("events.get_task_events", {"task": task}),
                                 ("events.scalar_metrics_iter_raw", {"task": task, "metric": {"metric": "m"}}),
                                 ("events.get_task_plots", {"task": task}),
                                 ("events.debug_images", {"metrics": [{"task": task, "metric": "m"}]}),
                                 ("events.scalar_metrics_iter_histogram", {"task": task})]:
            status, _, msg = api_b.error(endpoint, **fields)
            assert status == 400 and "Invalid task id" in msg, endpoint
        assert api_b.error("tasks.edit", task=task, name="stolen")[0] == 400
        assert api_b.error("tasks.delete", task=task)[0] == 400
        refused = api_b.add_batch_raw([{"type": "log", "task": task, "msg": "b's log", "level": "info"}])
        meta = assert_envelope(refused, 400)  # the real server's events_not_added (400/131)
        assert "Invalid task id" in meta["result_msg"]
        # B's own project of the same name is B's, A's is untouched
        api_b.call("projects.create", name="secret-project", description="")
        assert api_a.call("tasks.get_by_id", task=task)["task"]["name"] == "secret-task"
        logs = api_a.call("events.get_task_log", task=task)["events"]
        assert [e["msg"] for e in logs] == ["a's log"]
        # files: B can neither read, overwrite nor delete A's, nor reach them through the companies folder
        files = server.info.files_host
        path = "secret-project/secret-task.1/artifacts/w/weights.pt"
        assert api_a.session.post(f"{files}/", files={path: ("w.pt", b"A's weights")}, timeout=10).ok
        assert raw_get(files, f"/{path}", api_b.token)[0] == 404
        assert api_b.session.post(f"{files}/", files={path: ("w.pt", b"B's")}, timeout=10).ok  # B's own copy
        assert raw_get(files, f"/{path}", api_a.token) == (200, b"A's weights")
        assert raw_get(files, f"/{path}", api_b.token) == (200, b"B's")
        assert api_b.session.delete(f"{files}/{path}", timeout=10).ok
        assert raw_get(files, f"/{path}", api_a.token) == (200, b"A's weights")
        for sneaky in ("/.companies", "/.companies/x/secret-project"):
            assert raw_get(files, sneaky, api_a.token)[0] == 400


def raw_get(files_host: str, path: str, token: str | None) -> tuple[int, bytes]:
    """GET exactly ``path`` (no client-side dot-segment normalisation)."""
    parts = urlsplit(files_host)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    if token:
        conn.putheader("Authorization", f"Bearer {token}")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_fileserver_refuses_traversal_and_requires_a_token(clearml_server):
    info = clearml_server.info
    api = RawApi(info)
    data_dir = clearml_server.data_dir
    secret_file = data_dir / "credentials.json"
    assert secret_file.exists()
    up = api.session.post(info.files_host + "/", files={"p/t.1/artifacts/a/ok.txt": ("ok.txt", b"fine")},
                          timeout=10)
    assert up.status_code == 200
    assert raw_get(info.files_host, "/p/t.1/artifacts/a/ok.txt", api.token) == (200, b"fine")
    for path in ("/../credentials.json", "/p/../../credentials.json", "/p/t.1/../../../jwt.key",
                 "/%2e%2e/credentials.json", "/p/%2E%2E/%2E%2E/server.sqlite3", "/..%2fcredentials.json"):
        status, body = raw_get(info.files_host, path, api.token)
        assert status in (400, 404), path
        assert secret_file.read_bytes() not in body and b"secret" not in body, path
    bad = api.session.post(info.files_host + "/", files={"../../escaped.txt": ("e.txt", b"evil")}, timeout=10)
    assert bad.status_code == 400
    assert not list(data_dir.parent.rglob("escaped.txt"))
    assert raw_get(info.files_host, "/p/t.1/artifacts/a/ok.txt", None)[0] == 401
    assert raw_get(info.files_host, "/p/t.1/artifacts/a/ok.txt", "not-a-token")[0] == 401
    anon = requests.post(info.files_host + "/", files={"p/anon.txt": ("anon.txt", b"x")}, timeout=10)
    assert anon.status_code == 401
    assert raw_get(info.files_host, "/p/anon.txt", api.token)[0] == 404


WRONG_KEYS = r"""
from clearml import Task
Task.init(project_name="never", task_name="never")
print("UNEXPECTED: task created")
"""


def test_wrong_keys_fail_fast(clearml_server, tmp_path):
    env = sdk_env(clearml_server.info, tmp_path / "home")
    env["CLEARML_API_SECRET_KEY"] = "definitely-wrong-secret"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WRONG_KEYS], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    elapsed = time.monotonic() - started
    print(f"wrong keys: exit {proc.returncode} after {elapsed:.1f}s")
    assert proc.returncode != 0
    assert "UNEXPECTED" not in proc.stdout
    assert "LoginError" in proc.stderr or "401" in proc.stderr, proc.stderr[-2000:]
    assert elapsed < 20
    assert "definitely-wrong-secret" not in proc.stderr
    assert RawApi(clearml_server.info).call("tasks.get_all")["tasks"] == []


def cli() -> list[str]:
    exe = shutil.which("clearml-assets", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "clearml_assets.cli"]


def test_cli_help():
    proc = subprocess.run([*cli(), "local-server", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for option in ("--data-dir", "--host", "--api-port", "--files-port", "--access-key", "--secret-key"):
        assert option in proc.stdout
    assert "127.0.0.1" in proc.stdout


def test_cli_starts_server_and_prints_client_variables(tmp_path):
    api_port, files_port, web_port = free_port(), free_port(), free_port()  # 8080 may be taken on this machine
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    proc = subprocess.Popen([*cli(), "local-server", "--data-dir", str(tmp_path / "data"),
                             "--api-port", str(api_port), "--files-port", str(files_port),
                             "--web-port", str(web_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        printed: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"(CLEARML_[A-Z_]+)=(\S+)", line):
                printed[m.group(1)] = m.group(2)
            if "Ctrl+C" in line:
                break
        assert printed["CLEARML_API_HOST"] == f"http://127.0.0.1:{api_port}"
        assert printed["CLEARML_FILES_HOST"] == f"http://127.0.0.1:{files_port}"
        assert {"CLEARML_WEB_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY"} <= set(printed)
        token = None
        while time.monotonic() < deadline and token is None:
            try:
                resp = requests.get(f"{printed['CLEARML_API_HOST']}/auth.login", timeout=2,
                                    auth=(printed["CLEARML_API_ACCESS_KEY"], printed["CLEARML_API_SECRET_KEY"]))
                token = resp.json()["data"]["token"]
            except requests.ConnectionError:
                time.sleep(0.1)
        assert token
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the local server did not stop on SIGINT within 15 s")


UNSUPPORTED = r"""
import time
from clearml.backend_api.session.client import APIClient
client = APIClient()
started = time.monotonic()
try:
    client.dataviews.get_all()
except Exception as exc:
    print("RAISED", type(exc).__name__, str(exc)[:300].replace("\n", " "), round(time.monotonic() - started, 2))
"""


def test_unsupported_endpoint_fails_fast_in_the_sdk(sdk_runner):
    """dataviews.* (enterprise only, not in clearml-server 1.9.2) is not served: the SDK gets the real 404 error
    at once, no retries, no hang."""
    line = [x for x in sdk_runner(UNSUPPORTED, timeout=60).stdout.splitlines() if x.startswith("RAISED")][0]
    assert "Unable to find endpoint" in line and "dataviews.get_all" in line
    assert float(line.split()[-1]) < 5
