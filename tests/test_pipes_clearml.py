"""PipesClearMLClient against the local server: a script run as a ClearML task locally and by a real
``clearml-agent daemon`` (virtualenv mode, this Python), its Pipes messages read back from the task's log."""


import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.pipes import ClearMLTaskFailure, PipesClearMLClient, start_local_agent
from clearml_assets.resource import ClearMLResource

from conftest import dagster_child_env, sdk_env, server_world

REPO = str(Path(__file__).resolve().parents[1])
SCRIPT = """
from clearml_assets.pipes import open_clearml_pipes

with open_clearml_pipes() as pipes:
    who = pipes.extras["who"]
    print("console line from the script")
    pipes.log.info(f"hello {who}")
    if pipes.extras.get("fail"):
        raise RuntimeError("the script failed on purpose")
    if pipes.extras.get("block"):
        pipes.log.info("blocking")
        import time
        while True:
            time.sleep(1)
    pipes.report_asset_materialization(metadata={"rows": 3, "who": who})
    pipes.report_asset_check(check_name="positive", passed=True, metadata={"min": 1})
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with server_world(tmp_path_factory, "pipes") as world:
        yield world


def pipes_defs(queue: str | None, extras: dict, timeout: float | None = None):
    @dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="pipes_asset")])
    def pipes_asset(context: dg.AssetExecutionContext, clearml: ClearMLResource):
        client = PipesClearMLClient(clearml, poll_interval=0.5)
        return client.run(context=context, script=SCRIPT, entry_point="pipes_script.py", queue=queue,
                          project="pipes_test", extras=extras, timeout=timeout).get_results()

    return [pipes_asset]


def materialize(world, queue=None, raise_on_error=True, instance=None, **extras):
    return dg.materialize(pipes_defs(queue, {"who": "world", **extras}), resources={"clearml": world.resource},
                          raise_on_error=raise_on_error, instance=instance)


def run_log(instance, result) -> list[str]:
    """The user log lines of the run, as the Dagster UI shows them."""
    return [entry.user_message for entry in instance.all_logs(result.run_id)]


def task_of(world, meta) -> dict:
    (doc,) = world.client.session.call("tasks.get_all", id=[meta["clearml_task_id"].value])["tasks"]
    return doc


def check_success(world, result) -> dict:
    (mat,) = result.asset_materializations_for_node("pipes_asset")
    assert mat.metadata["rows"].value == 3 and mat.metadata["who"].value == "world"
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "positive" and check.passed and check.metadata["min"].value == 1
    doc = task_of(world, mat.metadata)
    assert doc["status"] == "completed"
    assert doc["hyperparams"]["DagsterPipes"]["context"]["value"]  # the context went through the task
    return doc


@pytest.mark.timeout(300)
def test_local_execution_runs_the_script_as_a_clearml_task_and_reads_its_messages(world):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(world, instance=instance)
    doc = check_success(world, result)
    logs = world.client.session.call("events.get_task_log", task=doc["id"], navigate_earlier=False)["events"]
    assert any("console line from the script" in e["msg"] for e in logs)
    lines = run_log(instance, result)
    assert "hello world" in lines, lines
    assert any(doc["id"] in line and "/experiments/" in line for line in lines)  # the task page is linked


@pytest.mark.timeout(300)
def test_a_failing_script_fails_the_run_and_the_task(world):
    with pytest.raises(ClearMLTaskFailure) as err:
        materialize(world, fail=True)
    assert "ended failed" in str(err.value)
    doc = task_of(world, err.value.metadata)
    assert doc["status"] == "failed"


def test_no_live_worker_on_the_queue_fails_at_once_naming_it(world):
    world.client.session.call("queues.create", name="nobody")
    before = len(world.client.session.call("tasks.get_all", only_fields=["id"])["tasks"])
    with pytest.raises(ClearMLTaskFailure, match="No live ClearML worker serves queue 'nobody'"):
        materialize(world, queue="nobody")
    with pytest.raises(ClearMLTaskFailure, match="no ClearML queue named 'missing'"):
        materialize(world, queue="missing")
    # Refused before anything was created: no task left pending.
    assert len(world.client.session.call("tasks.get_all", only_fields=["id"])["tasks"]) == before


@pytest.fixture(scope="module")
def agent(world):
    # The agent's home holds its configuration with the keys: outside pytest's folder, which the session's
    # secrets scan reads.
    home = Path(tempfile.mkdtemp(prefix="clearml_agent_"))
    running = start_local_agent("pipes_q", world.resource.sdk_env(), home, worker="test-agent",
                                extra_env={"PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))})
    try:
        # The agent registers before it polls: wait for that event (not a time).
        deadline_checks = 0
        while not any(w["id"] == "test-agent" for w in world.client.session.call("workers.get_all")["workers"]):
            deadline_checks += 1
            assert running.process.poll() is None, running.log()[-3000:]
            assert deadline_checks < 1200, running.log()[-3000:]
            time.sleep(0.1)
        yield running
    finally:
        running.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.timeout(300)
def test_queue_execution_is_run_by_a_real_clearml_agent(world, agent):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(world, queue="pipes_q", instance=instance)
    doc = check_success(world, result)
    assert "hello world" in run_log(instance, result)
    assert doc["last_worker"] == "test-agent"
    logs = world.client.session.call("events.get_task_log", task=doc["id"], navigate_earlier=False)["events"]
    assert any("console line from the script" in e["msg"] for e in logs)


def wait_until(predicate, what: str, limit: float = 300, detail=lambda: ""):
    """Poll until ``predicate()`` is truthy (the limit only guards against a hang; ``detail()`` is added to the
    message then)."""
    end = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < end, f"gave up waiting for {what}\n{detail()}"
        time.sleep(0.2)


def running_task(world, queue_name: str) -> str | None:
    (queue,) = [q for q in world.client.session.call("queues.get_all", name=f"^{queue_name}$")["queues"]]
    tasks = world.client.session.call("tasks.get_all", status=["in_progress"], only_fields=["id", "execution"])["tasks"]
    found = [t["id"] for t in tasks if (t.get("execution") or {}).get("queue") == queue["id"]]
    if found and any("blocking" in e["msg"] for e in world.client.session.call(
            "events.get_task_log", task=found[0], navigate_earlier=False)["events"]):
        return found[0]
    return None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_agents_task_does_not_stay_in_progress(world):
    home = Path(tempfile.mkdtemp(prefix="clearml_agent_"))
    doomed = start_local_agent("doomed_q", world.resource.sdk_env(), home, worker="doomed-agent",
                               extra_env={"PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))})
    outcome: dict = {}

    def run():
        try:
            materialize(world, queue="doomed_q", block=True)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome["error"] = exc

    def registered() -> bool:
        assert doomed.process.poll() is None, f"the agent exited:\n{doomed.log()[-3000:]}"
        return any(w["id"] == "doomed-agent" for w in world.client.session.call("workers.get_all")["workers"])

    try:  # bounded below the test's timeout, so a hang ends with the agent's log rather than a stack dump
        wait_until(registered, "the agent to register", limit=200, detail=lambda: doomed.log()[-3000:])
        thread = threading.Thread(target=run)
        thread.start()
        task_id = wait_until(lambda: running_task(world, "doomed_q"), "the script to run")
        doomed.stop(signal.SIGKILL)  # agent and script gone, nothing unregistered
        # Its registration expires `timeout` after the last report (600 s by default): expire it now.
        for doc in world.server.store.all("workers"):
            if doc.get("worker") == "doomed-agent":
                doc["expires"] = 0
        thread.join(120)
        assert not thread.is_alive()
    finally:
        doomed.stop(signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)
    assert isinstance(outcome.get("error"), ClearMLTaskFailure), outcome
    assert "doomed" in str(outcome["error"]) or "No live ClearML worker" in str(outcome["error"])
    (doc,) = world.client.session.call("tasks.get_all", id=[task_id], only_fields=["status", "status_reason"])["tasks"]
    assert doc["status"] == "failed" and doc["status_reason"], doc


TERMINATE_DEFS = """
import os
import dagster as dg
from clearml_assets.pipes import PipesClearMLClient
from clearml_assets.resource import ClearMLAccount, ClearMLResource

SCRIPT = os.environ["T_SCRIPT"]

@dg.asset
def blocked(context: dg.AssetExecutionContext, clearml: ClearMLResource):
    return PipesClearMLClient(clearml, poll_interval=0.5).run(
        context=context, script=SCRIPT, entry_point="pipes_script.py", queue="pipes_q", project="pipes_test",
        extras={"who": "terminated", "block": True}).get_materialize_result()

account = ClearMLAccount(api_host=os.environ["T_API"], web_host=os.environ["T_WEB"],
                         files_host=os.environ["T_FILES"], credentials_file=os.environ["T_CREDS"])
defs = dg.Definitions(assets=[blocked], resources={"clearml": ClearMLResource(accounts={"local": account},
                                                                              default_account="local")})
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_terminating_the_dagster_run_stops_the_task_on_the_agent(world, agent, tmp_path):
    info = world.server.info
    (tmp_path / "defs.py").write_text(TERMINATE_DEFS)
    env = dagster_child_env(info, tmp_path / "dagster_home", T_SCRIPT=SCRIPT)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-f",
                             str(tmp_path / "defs.py"), "--select", "blocked"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        task_id = wait_until(lambda: proc.poll() is None and running_task(world, "pipes_q"), "the script to run")
        os.kill(proc.pid, signal.SIGTERM)  # what the UI's terminate sends to the run
        proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (doc,) = world.client.session.call("tasks.get_all", id=[task_id], only_fields=["status", "status_reason"])["tasks"]
    assert doc["status"] == "failed" and doc["status_reason"].startswith("Interrupted"), doc
    # The agent killed the blocked script: it is free and runs the next task to the end.
    check_success(world, materialize(world, queue="pipes_q"))


FUNCTION_MODULE = """
from clearml_assets.pipes import open_clearml_pipes


def report_rows():
    with open_clearml_pipes() as pipes:
        pipes.report_asset_materialization(metadata={"rows": pipes.extras["rows"]})
"""


@pytest.mark.timeout(300)
def test_a_module_level_function_runs_as_the_task(world, tmp_path, monkeypatch):
    (tmp_path / "user_jobs.py").write_text(FUNCTION_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    import user_jobs

    @dg.asset
    def rows(context: dg.AssetExecutionContext, clearml: ClearMLResource):
        return PipesClearMLClient(clearml, poll_interval=0.5).run(
            context=context, script=user_jobs.report_rows, project="pipes_test", extras={"rows": 7}
        ).get_materialize_result()

    result = dg.materialize([rows], resources={"clearml": world.resource})
    (mat,) = result.asset_materializations_for_node("rows")
    assert mat.metadata["rows"].value == 7
    (doc,) = world.client.session.call("tasks.get_all", id=[mat.metadata["clearml_task_id"].value])["tasks"]
    assert doc["script"]["entry_point"] == "report_rows.py" and doc["status"] == "completed"
    with pytest.raises(ValueError, match="not a module-level function"):
        PipesClearMLClient(world.resource).run(context=None, script=lambda: None)
