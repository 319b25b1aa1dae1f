"""The local server against hostile callers (issue 26): a catastrophic regular expression, zlib bombs in plots, a
port taken over after the server died, the web view's session, very deep or long names, the sign-in page.

Every wait is for an event or an answer, bounded only so that a broken server fails instead of hanging; memory is
the server process's own high-water mark (``VmHWM``), never a timing.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys
import threading
import zlib
from pathlib import Path

import jwt
import psutil
import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
from server_api import RawApi  # noqa: E402

from clearml_assets.local_server import Credential, LocalServer, start_local_server_process  # noqa: E402
from clearml_assets.local_server.auth import write_credentials  # noqa: E402

A = Credential("HOSTILEAAAAAAAAAAAAA", "secret-of-company-a-" + "a" * 24, company="company-a", user="alice")
B = Credential("HOSTILEBBBBBBBBBBBBB", "secret-of-company-b-" + "b" * 24, company="company-b", user="bob")
GUARD = 120  # seconds: only a hang guard, never a measure
MIB = 1 << 20


@pytest.fixture(scope="module")
def two_companies(tmp_path_factory):
    with LocalServer(tmp_path_factory.mktemp("hostile") / "srv", api_port=0, files_port=0, web_port=0,
                     credentials=[A, B]) as server:
        yield server


@pytest.fixture(scope="module")
def server_process(tmp_path_factory):
    """A server in a child process (a stuck or bloated one is killed with it), serving both companies."""
    data_dir = tmp_path_factory.mktemp("hostile-proc") / "srv"
    data_dir.mkdir(mode=0o700)
    write_credentials(data_dir / "credentials.json", [A, B])
    proc = start_local_server_process(data_dir, log_file=data_dir.parent / "server.log")
    try:
        yield proc
    finally:
        proc.stop()


def _api(info, cred: Credential) -> RawApi:
    return RawApi(info, cred.access_key, cred.secret_key)


def _task(api: RawApi, name: str) -> str:
    return api.call("tasks.create", name=name, type="training")["id"]


def _peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark in bytes (``VmHWM``: the peak, whenever it happened)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


# -- 1. regular expressions ---------------------------------------------------------------------------------------
def test_catastrophic_regex_finishes_and_other_companies_are_answered(server_process):
    """``^(a+)+$`` against ``"a" * 40 + "!"`` backtracks for ever in Python's ``re`` (on the old server it held the
    store's lock meanwhile): with RE2 the query ends, and another company's calls are answered too."""
    api_a, api_b = _api(server_process.info, A), _api(server_process.info, B)
    _task(api_a, "a" * 40 + "!")
    answers: dict[str, requests.Response] = {}

    def query() -> None:
        answers["a"] = api_a.session.post(f"{server_process.info.api_host}/v2.23/tasks.get_all",
                                          json={"name": "^(a+)+$", "only_fields": ["name"]}, timeout=GUARD)

    thread = threading.Thread(target=query, daemon=True)
    thread.start()
    other = api_b.session.post(f"{server_process.info.api_host}/v2.23/projects.get_all", json={}, timeout=GUARD)
    thread.join(GUARD)
    assert other.status_code == 200
    assert not thread.is_alive() and answers["a"].status_code == 200
    assert answers["a"].json()["data"]["tasks"] == []
    # the linear-time engine still matches what it should
    assert [t["name"] for t in api_a.call("tasks.get_all", name="^a+!$", only_fields=["name"])["tasks"]] == [
        "a" * 40 + "!"]


def test_regex_is_matched_outside_the_store_lock(two_companies, monkeypatch):
    """While one company's pattern is being matched, the store's lock is free: another company's request that
    needs it is answered before the matching ends."""
    from clearml_assets.local_server.store import filters

    info = two_companies.info
    api_a, api_b = _api(info, A), _api(info, B)
    _task(api_a, "slow match")
    matching, release = threading.Event(), threading.Event()
    original = filters.match_texts

    def held_match(checks, texts):
        matching.set()
        assert release.wait(GUARD), "the test never released the matcher"
        return original(checks, texts)

    monkeypatch.setattr(filters, "match_texts", held_match)
    answers: dict[str, dict] = {}
    thread = threading.Thread(target=lambda: answers.update(a=api_a.call("tasks.get_all", name="^slow")),
                              daemon=True)
    thread.start()
    try:
        assert matching.wait(GUARD)
        created = api_b.call("projects.create", name="created while company a's regex runs")  # takes the lock
        listed = api_b.call("projects.get_all", id=[created["id"]])["projects"]
        assert [p["name"] for p in listed] == ["created while company a's regex runs"]
        assert "a" not in answers  # the matching was indeed still under way
    finally:
        release.set()
        thread.join(GUARD)
    assert [t["name"] for t in answers["a"]["tasks"]] == ["slow match"]


def test_patterns_re2_cannot_run_are_a_400_naming_the_field(two_companies):
    api = _api(two_companies.info, A)
    code, subcode, msg = api.error("tasks.get_all", name=r"(a)\1")  # a backreference: no linear-time form
    assert (code, subcode) == (400, 21) and "name" in msg and "RE2" in msg
    code, _, msg = api.error("tasks.get_all", _any_={"pattern": "(?<=x)y", "fields": ["name", "comment"]})
    assert code == 400 and "_any_.pattern" in msg
    code, _, msg = api.error("projects.get_all", name=["not", "a", "string"])
    assert code == 400 and "name" in msg


# -- 2. zlib bombs ------------------------------------------------------------------------------------------------
def _bomb(size: int) -> str:
    """``plot_data`` (base64 of zlib) inflating to ``size`` bytes, made without holding them in memory."""
    packer, chunk = zlib.compressobj(9), b"a" * MIB
    packed = b"".join(packer.compress(chunk) for _ in range(size // MIB)) + packer.flush()
    return base64.encodebytes(packed).decode("ascii")


def test_plot_zlib_bombs_are_answered_with_bounded_memory(server_process):
    """A 200 MB plot in ~200 KB of ``plot_data`` (sent as is by a client, stored as is like the real server) is
    answered without its text and with ``plot_error`` on every plot read and the web view, while the server's
    peak memory grows by far less than the bomb; a plot within the limit still inflates."""
    info = server_process.info
    api = _api(info, A)
    task = _task(api, "bombed task")
    fine = json.dumps({"data": [{"type": "bar", "y": list(range(30_000))}], "layout": {}})
    api.add_batch([{"type": "plot", "task": task, "iter": 0, "metric": "fine", "variant": "v", "plot_str": fine}])
    warm = api.call("events.get_task_plots", task=task, iters=1)["plots"]
    assert [p["plot_str"] for p in warm] == [fine]  # stored compressed (>= 100,000 characters), read back whole
    web = _web_session(info, A)
    assert web.get(f"{info.web_host}/projects/*/experiments/{task}/output/metrics/plots", timeout=GUARD).ok
    before = _peak_rss(server_process.process.pid)
    bomb = _bomb(200 * MIB)
    assert len(bomb) < 400_000
    api.add_batch([{"type": "plot", "task": task, "iter": 1, "metric": "bomb", "variant": "v", "plot_data": bomb}])
    plots = {p["metric"]: p for p in api.call("events.get_task_plots", task=task, iters=2)["plots"]}
    assert _peak_rss(server_process.process.pid) - before < 80 * MIB
    assert plots["bomb"]["plot_str"] == "" and "inflates to more than" in plots["bomb"]["plot_error"]
    api.add_batch([{"type": "plot", "task": task, "iter": 1, "metric": "broken", "variant": "v",
                    "plot_data": base64.encodebytes(b"not zlib at all").decode()}])
    plots = {p["metric"]: p for p in api.call("events.get_task_plots", task=task, iters=2)["plots"]}
    assert "damaged" in plots["broken"]["plot_error"]
    assert plots["fine"]["plot_str"] == fine
    sample = api.call("events.get_plot_sample", task=task, metric="bomb")
    assert sample["events"][0]["plot_error"]
    scrolled = api.call("events.plots", metrics=[{"task": task, "metric": "bomb"}], iters=1)
    assert scrolled["metrics"][0]["iterations"][0]["events"][0]["plot_error"]
    multi = api.call("events.get_multi_task_plots", tasks=[task], iters=1)["plots"]
    assert multi["bomb"]["v"][task]["1"]["plots"][0]["plot_error"]
    page = web.get(f"{info.web_host}/projects/*/experiments/{task}/output/metrics/plots", timeout=GUARD)
    assert page.ok and "inflates to more than" in page.text and "bomb / v" in page.text
    assert _peak_rss(server_process.process.pid) - before < 80 * MIB


def _web_session(info, cred: Credential) -> requests.Session:
    web = requests.Session()
    resp = web.post(f"{info.web_host}/login", data={"access_key": cred.access_key, "secret_key": cred.secret_key,
                                                     "next": "/projects"}, timeout=GUARD)
    assert resp.ok, resp.text
    return web


# -- 4. a stale server.json -----------------------------------------------------------------------------------------
class _Listener:
    """Whatever took the port of a dead server: records every request it gets and answers ``{}``."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.received.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n{}")

    def close(self) -> None:
        self.sock.close()


def test_a_stale_server_record_hands_no_credential_to_whoever_took_the_port(tmp_path):
    from clearml_assets.local_server.ensure import health, running_local_server, start_server, stop_server

    data_dir = tmp_path / "home" / "server"
    info, started = start_server(data_dir, api_port=0, files_port=0, web_port=None)
    assert started
    record = json.loads((data_dir / "server.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    psutil.Process(record["pid"]).wait(GUARD)
    listener = _Listener(int(info.api_host.rsplit(":", 1)[1]))
    try:
        assert running_local_server(tmp_path / "home") is None
        assert stop_server(data_dir) is None
        # a record whose pid runs again (here: this test's own process) is not trusted either
        (data_dir / "server.json").write_text(json.dumps({**record, "pid": os.getpid()}))
        assert running_local_server(tmp_path / "home") is None
        assert stop_server(data_dir) is None
        assert health(info)["api"] is False
    finally:
        listener.close()
    assert listener.received  # the identity check did reach the listener...
    for request in listener.received:  # ...and gave it no credential
        assert b"authorization" not in request.lower()
        assert info.secret_key.encode() not in request
        assert b"auth.login" not in request


# -- 11. the web view's session -------------------------------------------------------------------------------------
def test_web_view_session_is_read_only_revocable_and_no_api_token(two_companies):
    info = two_companies.info
    api = _api(info, A)
    task = _task(api, "session task")
    upload = requests.post(f"{info.files_host}/", files={f"/p/{task}/report.txt": ("report.txt", b"hello")},
                           headers={"Authorization": f"Bearer {api.token}"}, timeout=GUARD)
    assert upload.ok
    resp = requests.post(f"{info.web_host}/login", data={"access_key": A.access_key, "secret_key": A.secret_key,
                                                          "next": "/projects"}, allow_redirects=False, timeout=GUARD)
    cookie = resp.headers["set-cookie"]
    assert "clearml_assets_view=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    session = resp.cookies["clearml_assets_view"]
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(session, options={"verify_signature": False})
    jar = {"clearml_assets_view": session}
    page = f"{info.web_host}/projects/*/experiments/{task}/output/execution"
    file_url = f"{info.files_host}/p/{task}/report.txt"
    assert requests.get(page, cookies=jar, allow_redirects=False, timeout=GUARD).status_code == 200
    assert requests.get(file_url, cookies=jar, timeout=GUARD).content == b"hello"
    # no API call and no fileserver write accepts it
    for auth in ({"Authorization": f"Bearer {session}"}, {"Cookie": f"clearml_assets_view={session}"}):
        denied = requests.post(f"{info.api_host}/v2.23/tasks.get_all", json={}, headers=auth, timeout=GUARD)
        assert denied.status_code == 401
    assert requests.post(f"{info.files_host}/", files={"/p/evil.txt": ("evil.txt", b"x")}, cookies=jar,
                         timeout=GUARD).status_code == 401
    assert requests.delete(file_url, cookies=jar, timeout=GUARD).status_code == 401
    # signing out ends it on the server: the same cookie value opens nothing any more
    out = requests.get(f"{info.web_host}/logout", cookies=jar, allow_redirects=False, timeout=GUARD)
    assert out.status_code == 303
    assert requests.get(page, cookies=jar, allow_redirects=False, timeout=GUARD).status_code == 303
    assert requests.get(file_url, cookies=jar, timeout=GUARD).status_code == 401


# -- 12. very deep or long names -----------------------------------------------------------------------------------
def test_deep_project_names_and_long_file_paths_are_clear_400s(two_companies):
    info = two_companies.info
    api = _api(info, A)
    deep = "/".join(["p"] * 1200)
    for call, fields in (("projects.create", {"name": deep}),
                         ("tasks.clone", {"task": _task(api, "clone me"), "new_project_name": deep})):
        code, subcode, msg = api.error(call, **fields)
        assert (code, subcode) == (400, 407) and "1200 levels deep" in msg, (call, msg)
    code, _, msg = api.error("projects.create", name="x" * 5000)
    assert code == 400 and "5000 characters, at most" in msg
    nested = "/".join(f"n{i}" for i in range(150))  # deep but allowed: made without recursion
    created = api.call("projects.create", name=nested)["id"]
    assert len(api.call("projects.get_by_id", project=created)["project"]["path"]) == 149
    headers = {"Authorization": f"Bearer {api.token}"}
    for path in ("/" + "/".join(["d" * 200] * 17), "/" + "/".join(["d" * 200] * 30), "/" + "x" * 6000):
        for resp in (requests.get(f"{info.files_host}{path}", headers=headers, timeout=GUARD),
                     requests.post(f"{info.files_host}/", files={path: ("f.txt", b"x")}, headers=headers,
                                   timeout=GUARD)):
            assert resp.status_code == 400 and "at most" in resp.json()["error"], (len(path), resp.text[:200])


# -- 13. the sign-in page ------------------------------------------------------------------------------------------
def test_sign_in_page_does_not_show_the_data_directory(two_companies):
    page = requests.get(f"{two_companies.info.web_host}/login", timeout=GUARD)
    assert page.ok and "Access key" in page.text
    assert str(two_companies.info.data_dir) not in page.text
    assert two_companies.info.data_dir.name not in page.text.replace("credentials.json", "")
