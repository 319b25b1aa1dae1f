"""The local server as a long-lived shared service: `clearml-assets local-server start|status|stop`, one server per
data directory, and the `local` account pointed at a running server by URL (CLEARML_ASSETS_LOCAL_SERVER)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from clearml_assets.errors import ClearMLConnectionError
from clearml_assets.local_server import LocalServer
from clearml_assets.local_server.runner import DataDirInUse
from clearml_assets.resource import ClearMLResource

from conftest import stop_embedded_server

CLI = [sys.executable, "-m", "clearml_assets.cli"]
FREE_PORTS = ["--api-port", "0", "--files-port", "0", "--web-port", "0"]


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    return subprocess.run([*CLI, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def service(tmp_path: Path):
    home = tmp_path / "shared_home"
    proc = cli("local-server", "start", "--home", str(home), *FREE_PORTS)
    assert proc.returncode == 0, proc.stderr
    try:
        yield home, proc.stdout
    finally:
        stop_embedded_server(home)


def test_start_status_stop(service):
    home, out = service
    record = json.loads((home / "server" / "server.json").read_text())
    assert {"api_host", "files_host", "web_host", "web_port", "pid"} <= set(record)
    assert record["web_host"].endswith(f":{record['web_port']}")
    assert "local-server stop --home" in out and "local-server status --home" in out

    status = cli("local-server", "status", "--home", str(home))
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("healthy: local server pid")
    for part in ("api", "files", "web"):
        assert f"{record[part + '_host']}  answers" in status.stdout
    assert requests.get(f"{record['web_host']}/healthz", timeout=10).text == "ok"

    # start again: the running server is reused, nothing new starts
    again = cli("local-server", "start", "--home", str(home), *FREE_PORTS)
    assert again.returncode == 0 and "already runs" in again.stdout
    assert json.loads((home / "server" / "server.json").read_text())["pid"] == record["pid"]

    stopped = cli("local-server", "stop", "--home", str(home))
    assert stopped.returncode == 0 and f"(pid {record['pid']})" in stopped.stdout
    assert not (home / "server" / "server.json").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{record['api_host']}/debug.ping", timeout=5)
    status = cli("local-server", "status", "--home", str(home))
    assert status.returncode == 3 and status.stdout.startswith("not running")
    assert cli("local-server", "stop", "--home", str(home)).stdout.startswith("no local server runs")


def test_a_second_server_on_a_served_data_dir_is_refused(service):
    home, _ = service
    data_dir = home / "server"
    record = json.loads((data_dir / "server.json").read_text())
    proc = cli("local-server", "--data-dir", str(data_dir), *FREE_PORTS, "--quiet")
    assert proc.returncode == 1
    assert f"the data directory {data_dir.resolve()} is already served by a local server at " \
           f"{record['api_host']} (pid {record['pid']})" in proc.stderr
    assert "local-server stop --data-dir" in proc.stderr
    with pytest.raises(DataDirInUse):
        LocalServer(data_dir, api_port=0, files_port=0, web_port=None).start()
    # the refused attempts left the running server and its record alone
    assert json.loads((data_dir / "server.json").read_text())["pid"] == record["pid"]
    assert requests.get(f"{record['api_host']}/debug.ping", timeout=10).status_code == 200


def test_in_process_server_releases_its_data_dir_on_stop(tmp_path: Path):
    first = LocalServer(tmp_path / "srv", api_port=0, files_port=0, web_port=None).start()
    with pytest.raises(DataDirInUse):
        LocalServer(tmp_path / "srv", api_port=0, files_port=0, web_port=None).start()
    first.stop()
    second = LocalServer(tmp_path / "srv", api_port=0, files_port=0, web_port=None).start()
    second.stop()


def test_local_account_points_at_a_shared_server_by_url(service, tmp_path: Path, monkeypatch):
    home, _ = service
    record = json.loads((home / "server" / "server.json").read_text())
    creds = json.loads((home / "server" / "credentials.json").read_text())[0]
    other_home = tmp_path / "worker_home"
    monkeypatch.setenv("CLEARML_ASSETS_LOCAL_SERVER", record["api_host"])
    monkeypatch.setenv("CLEARML_ASSETS_SERVER_ACCESS_KEY", creds["access_key"])
    monkeypatch.setenv("CLEARML_ASSETS_SERVER_SECRET_KEY", creds["secret_key"])
    client = ClearMLResource(home=str(other_home)).client("local")
    assert client.api_host == record["api_host"] and client.files_host == record["files_host"]
    assert client.web_host == record["web_host"]
    assert client.session.call("projects.get_all", only_fields=["id"]) is not None
    assert not (other_home / "server").exists()  # nothing started in this process's home

    monkeypatch.setenv("CLEARML_ASSETS_SERVER_SECRET_KEY", "wrong")
    with pytest.raises(ClearMLConnectionError, match="refuses the key pair"):
        ClearMLResource(home=str(other_home)).client("local")
    monkeypatch.setenv("CLEARML_ASSETS_LOCAL_SERVER", "http://127.0.0.1:9")
    with pytest.raises(ClearMLConnectionError, match="does not answer"):
        ClearMLResource(home=str(other_home)).client("local")


# -- a home's server keeps its ports, and says where its SDK settings are ------------------------------------------
def _listen(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4)
    return sock


def test_a_home_server_keeps_its_ports_across_restarts_or_says_why_it_cannot(tmp_path: Path, monkeypatch):
    """Links written to the server (metadata, task.json, summaries) stay valid: the ports it got at its first start
    are reused at every start; a recorded port another program took is an error naming it, not a silent move."""
    from clearml_assets.local_server.ensure import LocalServerError, start_server, stop_server
    from clearml_assets.local_server.server_info import free_port

    data_dir = tmp_path / "home" / "server"
    try:
        stranger = _listen()  # holds the preferred web port at the first start
        preferred = dict(api_port=free_port(), files_port=free_port(), web_port=stranger.getsockname()[1])
        try:
            first, started = start_server(data_dir, **preferred)
            assert started and not first.web_host.endswith(f":{preferred['web_port']}")
        finally:
            stranger.close()
        assert stop_server(data_dir)
        again, started = start_server(data_dir, **preferred)  # the preferred web port is free now: not taken back
        assert started and (again.api_host, again.files_host, again.web_host) == (
            first.api_host, first.files_host, first.web_host)
        assert stop_server(data_dir)

        squatter = _listen(again.web_port)
        try:
            with pytest.raises(LocalServerError) as err:
                start_server(data_dir, **preferred)
            msg = str(err.value)
            assert f"port {again.web_port} (web view" in msg and f"pid {os.getpid()}" in msg
            assert "CLEARML_ASSETS_LOCAL_WEB_PORT=<port>" in msg and "--web-port" in msg
            # choosing another port is recorded and then kept
            moved, _ = start_server(data_dir, **preferred, explicit={"web": 0})
            assert moved.web_host != again.web_host and moved.api_host == again.api_host
        finally:
            squatter.close()
        assert stop_server(data_dir)
        kept, _ = start_server(data_dir, **preferred)
        assert kept.web_host == moved.web_host
        assert stop_server(data_dir)
    finally:  # a failed check must not leave a detached server running
        stop_server(data_dir)


def test_status_names_the_sdk_settings_file_a_script_can_use_alone(service, tmp_path: Path):
    home, out = service
    conf = home / "server" / "clearml.conf"
    assert f"export CLEARML_CONFIG_FILE={conf}" in out
    status = cli("local-server", "status", "--home", str(home))
    assert status.returncode == 0 and f"export CLEARML_CONFIG_FILE={conf}" in status.stdout
    assert conf.stat().st_mode & 0o777 == 0o600
    secret = json.loads((home / "server" / "credentials.json").read_text())[0]["secret_key"]
    assert secret not in status.stdout
    # a ClearML script with nothing but that file reaches the server
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(HOME=str(tmp_path / "sdk-home"), CLEARML_CONFIG_FILE=str(conf), CLEARML_TASK_NO_REUSE="1")
    (tmp_path / "sdk-home").mkdir()
    script = ("from clearml import Task\n"
              "t = Task.create(project_name='conf only', task_name='made with clearml.conf')\n"
              "print('TASK', t.id, Task.get_task(task_id=t.id).name)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "made with clearml.conf" in proc.stdout
