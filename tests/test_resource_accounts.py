"""ClearMLResource: account config, fail-fast checks, two accounts in one run, no secret leaks, .env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.client import ClearMLClient
from clearml_assets.errors import ClearMLConfigError, ClearMLConnectionError
from clearml_assets.local_server import Credential, LocalServer, free_port
from clearml_assets.resource import ClearMLAccount, ClearMLResource
from clearml_assets.tasks import run_clearml_text_task

BOUND_SECONDS = 10.0


def _fake_server(status_after_login: int):
    """A loopback HTTP server that logs in fine, then answers every call with ``status_after_login``."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.endswith("auth.login"):
                body = {"meta": {"result_code": 200}, "data": {"token": "x.y.z"}}
                code = 200
            else:
                body = {"meta": {"result_code": status_after_login, "result_msg": "Service Unavailable"},
                        "data": {}}
                code = status_after_login
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _timed_failure(resource: ClearMLResource, account: str) -> tuple[Exception, float]:
    started = time.monotonic()
    with pytest.raises((ClearMLConnectionError, ClearMLConfigError)) as info:
        resource.client(account)
    elapsed = time.monotonic() - started
    print(f"time-to-error[{account}]: {elapsed:.2f}s: {info.value}")
    return info.value, elapsed


def test_unknown_account_names_the_env_vars():
    resource = ClearMLResource(accounts={"local": ClearMLAccount(embedded=True)})
    with pytest.raises(ClearMLConfigError) as info:
        resource.client("personal")
    message = str(info.value)
    assert "'personal'" in message and "CLEARML_KEY_PERSONAL" in message and "CLEARML_SECRET_PERSONAL" in message


def test_from_env_reads_seed_and_clearml_names():
    env = {"CLEARML_KEY_PERSONAL": "AKP", "CLEARML_SECRET_PERSONAL": "SKP",
           "CLEARML_KEY_ORIGINAL": "AKO", "CLEARML_SECRET_ORIGINAL": "SKO",
           "CLEARML_API_HOST_ORIGINAL": "http://clearml.example.com:8008",
           "CLEARML_API_ACCESS_KEY": "AKD", "CLEARML_API_SECRET_KEY": "SKD",
           "CLEARML_ASSETS_DEFAULT_ACCOUNT": "original"}
    resource = ClearMLResource.from_env(env)
    assert sorted(resource.account_names()) == ["default", "local", "original", "personal"]
    assert resource.default_account == "original"
    assert resource.accounts["personal"].api_host == "https://api.clear.ml"
    assert resource.accounts["original"].api_host == "http://clearml.example.com:8008"
    assert resource.accounts["local"].embedded


def test_missing_secret_env_var_fails_fast_naming_it(monkeypatch):
    monkeypatch.setenv("CLEARML_KEY_PERSONAL", "SOMEKEY")
    monkeypatch.delenv("CLEARML_SECRET_PERSONAL", raising=False)
    resource = ClearMLResource.from_env()
    error, elapsed = _timed_failure(resource, "personal")
    assert "CLEARML_SECRET_PERSONAL" in str(error) and elapsed < BOUND_SECONDS


def test_unreachable_host_fails_fast():
    port = free_port()
    resource = ClearMLResource(accounts={"original": ClearMLAccount(
        api_host=f"http://127.0.0.1:{port}", access_key="AK", secret_key="SECRET-unreachable")})
    error, elapsed = _timed_failure(resource, "original")
    assert isinstance(error, ClearMLConnectionError)
    assert "'original'" in str(error) and f"127.0.0.1:{port}" in str(error)
    assert "SECRET-unreachable" not in str(error)
    assert elapsed < BOUND_SECONDS


def test_wrong_keys_fail_fast(clearml_server: LocalServer):
    info = clearml_server.info
    resource = ClearMLResource(accounts={"personal": ClearMLAccount(
        api_host=info.api_host, files_host=info.files_host, access_key=info.access_key,
        secret_key="WRONG-SECRET-VALUE")})
    error, elapsed = _timed_failure(resource, "personal")
    assert "refused its keys" in str(error) and info.api_host in str(error)
    assert "WRONG-SECRET-VALUE" not in str(error)
    assert elapsed < BOUND_SECONDS


@pytest.mark.parametrize("status", [502, 503])
def test_5xx_after_login_fails_fast(status: int):
    server = _fake_server(status)
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        resource = ClearMLResource(accounts={"personal": ClearMLAccount(
            api_host=host, access_key="AK", secret_key="SK-5xx")})
        error, elapsed = _timed_failure(resource, "personal")
        assert isinstance(error, ClearMLConnectionError)
        assert str(status) in str(error) or "5xx" in str(error)
        assert host in str(error) and elapsed < BOUND_SECONDS
    finally:
        server.shutdown()


def test_server_dying_after_login_fails_fast(tmp_path: Path):
    server = LocalServer(tmp_path / "dies", api_port=0, files_port=0).start()
    info = server.info
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="personal")
    client.check()
    server.stop()
    started = time.monotonic()
    with pytest.raises(ClearMLConnectionError) as err:
        client.call("tasks.get_all", page=0, page_size=1)
    elapsed = time.monotonic() - started
    print(f"time-to-error[server died after login]: {elapsed:.2f}s")
    assert "'personal'" in str(err.value) and elapsed < BOUND_SECONDS


def _two_account_assets():
    @dg.asset
    def in_alpha(clearml: ClearMLResource) -> str:
        task_id = run_clearml_text_task(clearml, "alpha-task", "alpha result", project_name="iso", account="alpha")
        names = [t["name"] for t in clearml.client("alpha").call("tasks.get_all", id=[task_id],
                                                                  only_fields=["name"])["tasks"]]
        assert names == ["alpha-task"]
        return task_id

    @dg.asset
    def in_beta(clearml: ClearMLResource) -> str:
        return run_clearml_text_task(clearml, "beta-task", "beta result", project_name="iso", account="beta")

    return [in_alpha, in_beta]


def test_two_accounts_in_one_materialize_do_not_cross(tmp_path: Path):
    a = LocalServer(tmp_path / "a", api_port=0, files_port=0,
                    credentials=[Credential("ALPHAKEY0000", "alpha-secret-value-1234", "alpha")]).start()
    b = LocalServer(tmp_path / "b", api_port=0, files_port=0,
                    credentials=[Credential("BETAKEY00000", "beta-secret-value-5678", "beta")]).start()
    try:
        def account(info):
            return ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                                  access_key=info.access_key, secret_key=info.secret_key)

        resource = ClearMLResource(accounts={"alpha": account(a.info), "beta": account(b.info)},
                                   default_account="alpha", home=str(tmp_path / "home"))
        result = dg.materialize(_two_account_assets(), resources={"clearml": resource})
        assert result.success
        alpha_id, beta_id = result.output_for_node("in_alpha"), result.output_for_node("in_beta")
        for server, own, other, name in ((a, alpha_id, beta_id, "alpha-task"), (b, beta_id, alpha_id, "beta-task")):
            client = ClearMLClient(server.info.api_host, server.info.access_key, server.info.secret_key)
            tasks = client.call("tasks.get_all", only_fields=["id", "name", "status"])["tasks"]
            assert [(t["id"], t["name"], t["status"]) for t in tasks] == [(own, name, "completed")]
            assert other not in {t["id"] for t in tasks}
            log = client.call("events.get_task_log", task=own, navigate_earlier=False, batch_size=100)
            assert any("result" in e.get("msg", "") for e in log["events"])

        records = result.get_step_success_events() + list(result.all_events)
        text = "\n".join(str(r) for r in records)
        for secret in ("alpha-secret-value-1234", "beta-secret-value-5678"):
            assert secret not in text
    finally:
        a.stop()
        b.stop()


def test_dotenv_is_loaded_by_dagster_asset_materialize(clearml_server: LocalServer, tmp_path: Path):
    info = clearml_server.info
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".env").write_text(
        f"CLEARML_KEY_PERSONAL={info.access_key}\nCLEARML_SECRET_PERSONAL={info.secret_key}\n"
        f"CLEARML_API_HOST_PERSONAL={info.api_host}\nCLEARML_FILES_HOST_PERSONAL={info.files_host}\n"
        f"CLEARML_WEB_HOST_PERSONAL={info.web_host}\nCLEARML_ASSETS_DEFAULT_ACCOUNT=personal\n")
    (project / "envdefs.py").write_text(textwrap.dedent("""
        import dagster as dg
        from clearml_assets.resource import ClearMLResource

        @dg.asset
        def account_probe(context, clearml: ClearMLResource) -> None:
            client = clearml.client()
            created = client.call("projects.create", name="from-dotenv")
            context.add_output_metadata({"account": client.account, "project_id": created["id"]})

        defs = dg.Definitions(assets=[account_probe], resources={"clearml": ClearMLResource.from_env()})
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env.update({"DAGSTER_HOME": str(tmp_path / "dh"), "PYTHONPATH": str(project),
                "CLEARML_ASSETS_HOME": str(tmp_path / "home")})
    (tmp_path / "dh").mkdir()
    proc = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "envdefs",
                           "--select", "account_probe"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key)
    assert [p["name"] for p in client.call("projects.get_all", name="^from-dotenv$")["projects"]] == ["from-dotenv"]
    assert info.secret_key not in proc.stdout + proc.stderr
