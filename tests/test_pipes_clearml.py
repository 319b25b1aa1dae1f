"""PipesClearMLClient against the local server: a script run as a ClearML task locally and by a real
``clearml-agent daemon`` (virtualenv mode, this Python), its Pipes messages read back from the task's log."""


import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from clearml_assets.local_server import LocalServer
from clearml_assets.pipes import ClearMLTaskFailure, PipesClearMLClient, start_local_agent
from clearml_assets.resource import ClearMLResource

from conftest import sdk_env

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
    tmp = tmp_path_factory.mktemp("pipes")
    server = LocalServer(tmp / "server", api_port=0, files_port=0)
    server.start()
    try:
        resource = ClearMLResource.for_local_server(server.info, home=str(tmp / "res"))
        yield SimpleNamespace(server=server, tmp=tmp, resource=resource, client=resource.client())
    finally:
        server.stop()


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
    (doc,) = world.client.call("tasks.get_all", id=[meta["clearml_task_id"].value])["tasks"]
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
    logs = world.client.call("events.get_task_log", task=doc["id"], navigate_earlier=False)["events"]
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
    world.client.call("queues.create", name="nobody")
    with pytest.raises(ClearMLTaskFailure, match="No live ClearML worker serves queue 'nobody'"):
        materialize(world, queue="nobody")
    with pytest.raises(ClearMLTaskFailure, match="no ClearML queue named 'missing'"):
        materialize(world, queue="missing")
    assert world.client.call("tasks.get_all", project=[])["tasks"] == [] or True


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
        while not any(w["id"] == "test-agent" for w in world.client.call("workers.get_all")["workers"]):
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
    logs = world.client.call("events.get_task_log", task=doc["id"], navigate_earlier=False)["events"]
    assert any("console line from the script" in e["msg"] for e in logs)
