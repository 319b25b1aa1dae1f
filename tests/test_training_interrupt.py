"""A real signal during training (`dagster asset materialize`, as a user's Ctrl-C or the UI's terminate):
the ClearML task ends failed with the reason, no model is registered, one clear line is printed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import dagster_child_env
from test_training_asset import PROJECT, TINY, champion_ids, world  # noqa: F401  (module fixture)

pytestmark = pytest.mark.slow  # each trains a model (20-70 s): the marked CI step

DEFS = """
import os
from clearml_assets.resource import ClearMLAccount, ClearMLResource
from clearml_assets.training import build_training_defs

account = ClearMLAccount(api_host=os.environ["T_API"], web_host=os.environ["T_WEB"],
                         files_host=os.environ["T_FILES"], credentials_file=os.environ["T_CREDS"])
defs = build_training_defs(project=os.environ["T_PROJECT"], metric_floor=0.0,
                           clearml=ClearMLResource(accounts={"local": account}, default_account="local",
                                                   home=os.environ["T_HOME"]))
"""


class Output:
    """A child's merged output, read as it comes."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode(errors="replace"))
                self.cond.notify_all()

    def wait_for(self, text: str, proc: subprocess.Popen, limit: float = 600) -> None:
        """Until a line contains ``text`` (the limit only guards against a hang)."""
        end = time.monotonic() + limit
        with self.cond:
            while not any(text in line for line in self.lines):
                assert proc.poll() is None, "".join(self.lines)[-5000:]
                assert time.monotonic() < end, "".join(self.lines)[-5000:]
                self.cond.wait(1)


@pytest.mark.timeout(700)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "terminate"])
def test_signal_during_training_marks_the_task_failed_and_registers_nothing(world, tmp_path, sig):  # noqa: F811
    info = world.server.info
    (tmp_path / "defs.py").write_text(DEFS)
    env = dagster_child_env(info, tmp_path / "dagster_home", T_PROJECT=PROJECT, T_HOME=str(tmp_path / "home"),
                            PYTHONUNBUFFERED="1")
    models_before = len(world.client.session.call("models.get_all")["models"])
    champions_before = champion_ids(world)
    config = {"ops": {"training__shapes_yolo": {"config": {**TINY, "epochs": 300, "dataset_id": world.dataset_id}}}}
    dagster = str(Path(sys.executable).with_name("dagster"))
    proc = subprocess.Popen([dagster, "asset", "materialize", "-f", str(tmp_path / "defs.py"),
                             "--select", "training/shapes_yolo", "--config-json", json.dumps(config)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out = Output(proc)
    try:
        out.wait_for("epoch 1/300", proc)  # training is running and reporting progress
        os.kill(proc.pid, sig)
        proc.wait(180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out.thread.join(10)
    text = "".join(out.lines)
    assert proc.returncode != 0
    interrupted = [line for line in out.lines if "Training interrupted: ClearML task" in line]
    assert len(interrupted) >= 1, text[-5000:]
    task_id = interrupted[0].split("ClearML task ", 1)[1].split()[0]
    (doc,) = world.client.session.call("tasks.get_all", id=[task_id], only_fields=["status", "status_reason"])["tasks"]
    assert doc["status"] == "failed" and doc["status_reason"].startswith("Interrupted"), doc
    assert len(world.client.session.call("models.get_all")["models"]) == models_before
    assert champion_ids(world) == champions_before
