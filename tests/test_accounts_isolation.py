"""Two ClearML accounts in one deployment and one run: every object lands on its own server only."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.client import ClearMLClient
from clearml_assets.errors import ClearMLRequestError
from clearml_assets.local_server import Credential, LocalServer
from clearml_assets.resource import ClearMLAccount, ClearMLResource
from clearml_assets.tasks import run_clearml_text_task
from conftest import run_sdk_script

ALPHA_SECRET = "alpha-secret-value-1234"
BETA_SECRET = "beta-secret-value-5678"


@pytest.fixture
def two_servers(tmp_path: Path):
    a = LocalServer(tmp_path / "a", api_port=0, files_port=0,
                    credentials=[Credential("ALPHAKEY0000", ALPHA_SECRET, "alpha")]).start()
    b = LocalServer(tmp_path / "b", api_port=0, files_port=0,
                    credentials=[Credential("BETAKEY00000", BETA_SECRET, "beta")]).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def _raw(server: LocalServer) -> ClearMLClient:
    info = server.info
    return ClearMLClient(info.api_host, info.access_key, info.secret_key)


def _account_asset(account: str):
    @dg.asset(name=f"in_{account}")
    def _asset(context, clearml: ClearMLResource) -> dict:
        task_id = run_clearml_text_task(clearml, f"{account}-task", f"{account} result", project_name="iso",
                                        account=account, timeout=120)
        client = clearml.client(account)
        tasks = client.session.call("tasks.get_all", only_fields=["id", "name", "project"])["tasks"]
        assert [(t["id"], t["name"]) for t in tasks] == [(task_id, f"{account}-task")]
        context.add_output_metadata({"account": account,
                                     "task": dg.MetadataValue.url(client.web_url("task", task_id,
                                                                                  tasks[0]["project"]))})
        return {"task_id": task_id, "cache": clearml.sdk_env(account)["CLEARML_CACHE_DIR"]}

    return _asset


def test_two_accounts_in_one_materialize_do_not_cross(two_servers, tmp_path: Path, capsys):
    a, b = two_servers

    def account(info):
        return ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                              access_key=info.access_key, secret_key=info.secret_key)

    resource = ClearMLResource(accounts={"alpha": account(a.info), "beta": account(b.info)},
                               default_account="alpha", home=str(tmp_path / "home"))
    environ_before = {k: v for k, v in os.environ.items() if k.startswith("CLEARML_")}
    result = dg.materialize([_account_asset("alpha"), _account_asset("beta")], resources={"clearml": resource})
    assert result.success
    alpha, beta = result.output_for_node("in_alpha"), result.output_for_node("in_beta")
    assert alpha["cache"] != beta["cache"]
    # the parent's SDK environment is untouched: only the children were configured
    assert {k: v for k, v in os.environ.items() if k.startswith("CLEARML_")} == environ_before

    for server, own, other, name in ((a, alpha, beta, "alpha-task"), (b, beta, alpha, "beta-task")):
        client = _raw(server)
        tasks = client.session.call("tasks.get_all", only_fields=["id", "name", "status"])["tasks"]
        assert [(t["id"], t["name"], t["status"]) for t in tasks] == [(own["task_id"], name, "completed")]
        assert [p["name"] for p in client.session.call("projects.get_all", only_fields=["name"])["projects"]] == ["iso"]
        log = client.session.call("events.get_task_log", task=own["task_id"], navigate_earlier=False, batch_size=100)
        texts = [e.get("msg", "") for e in log["events"]]
        assert any(f"result: {name.split('-')[0]} result" in t for t in texts)
        with pytest.raises(ClearMLRequestError, match="400"):
            client.session.call("tasks.get_by_id", task=other["task_id"])

    captured = capsys.readouterr()
    text = "\n".join([str(e) for e in result.all_events] + [captured.out, captured.err])
    for secret in (ALPHA_SECRET, BETA_SECRET):
        assert secret not in text


def test_seed_operations_configure_one_account_per_process(two_servers, tmp_path: Path):
    a, b = two_servers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    for name, info in (("PERSONAL", a.info), ("ORIGINAL", b.info)):
        env.update({f"CLEARML_KEY_{name}": info.access_key, f"CLEARML_SECRET_{name}": info.secret_key,
                    f"CLEARML_API_HOST_{name}": info.api_host, f"CLEARML_FILES_HOST_{name}": info.files_host,
                    f"CLEARML_WEB_HOST_{name}": info.web_host})
    env.update({"CLEARML_ASSETS_HOME": str(tmp_path / "home"), "HOME": str(tmp_path / "user")})
    proc = run_sdk_script("""
        from clearml_assets.errors import ClearMLConfigError
        from clearml_assets.tasks import log_clearml_result, start_clearml_task

        task = start_clearml_task("seed-task", "seed description", account_type="0")  # '0' = personal
        log_clearml_result(task, "mAP50 0.61")
        print("ID", task.id)
        try:
            start_clearml_task("other-task", "must not be created", account="original")
            print("SWITCHED")
        except ClearMLConfigError as exc:
            print("REFUSED", exc)
    """, env, timeout=120, cwd=tmp_path)
    assert "SWITCHED" not in proc.stdout and "REFUSED" in proc.stdout
    assert "cannot switch to account 'original'" in proc.stdout and "process-global" in proc.stdout
    task_id = proc.stdout.split("ID ", 1)[1].split()[0]

    personal = _raw(a)
    tasks = personal.session.call("tasks.get_all", only_fields=["id", "name", "comment", "status", "project"])["tasks"]
    assert [(t["id"], t["name"], t["comment"], t["status"]) for t in tasks] == [
        (task_id, "seed-task", "seed description", "completed")]
    project = personal.session.call("projects.get_by_id", project=tasks[0]["project"])["project"]
    assert project["name"] == "YOLOv8 Research"
    log = personal.session.call("events.get_task_log", task=task_id, navigate_earlier=False, batch_size=100)
    assert any("result: mAP50 0.61" in e.get("msg", "") for e in log["events"])
    assert _raw(b).session.call("tasks.get_all", only_fields=["id"])["tasks"] == []
    for secret in (ALPHA_SECRET, BETA_SECRET):
        assert secret not in proc.stdout + proc.stderr
