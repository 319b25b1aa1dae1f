"""A task's script run in a local subprocess the way ``clearml-agent`` would run it (``execution: local``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Mapping

from .tasks_api import TaskControl

LOCAL_WORKER = "dagster-local"


class LocalTaskRunner:
    """Runs the task's script in a subprocess the way ``clearml-agent`` would (status, console, exit)."""

    def __init__(self, control: TaskControl, task_id: str, script: str, entry_point: str,
                 env: Mapping[str, str], echo: bool):
        self.control, self.task_id, self.echo = control, task_id, echo
        self.folder = Path(tempfile.mkdtemp(prefix="clearml_pipes_"))
        (self.folder / entry_point).write_text(script)
        self.control.started(task_id)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        child_env.update(env)
        child_env.update({"CLEARML_TASK_ID": task_id, "PYTHONUNBUFFERED": "1"})
        # Own session: a Ctrl-C in the terminal reaches Dagster only, which stops the task cleanly.
        self.process = subprocess.Popen([sys.executable, entry_point], cwd=self.folder, env=child_env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self.console = threading.Thread(target=self._pump, daemon=True)
        self.console.start()

    def _pump(self) -> None:
        """The child's console into the task's log (as the agent does), and to stderr with ``echo``."""
        batch: list[str] = []
        last = time.monotonic()
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode(errors="replace")
            if self.echo:
                sys.stderr.write(line)
            batch.append(line)
            if time.monotonic() - last > 1.0 or len(batch) > 200:
                self._send(batch)
                batch, last = [], time.monotonic()
        self._send(batch)

    def _send(self, lines: list[str]) -> None:
        if lines:
            try:
                self.control.add_log(self.task_id, "".join(lines), worker=LOCAL_WORKER)
            except Exception:  # noqa: BLE001 - console upload is best effort; the run goes on
                pass

    def finished(self) -> bool:
        """Whether the script exited; then the task's status is set as the agent sets it."""
        code = self.process.poll()
        if code is None:
            return False
        self.console.join(10)
        if code == 0:
            self.control.completed(self.task_id)
        else:
            self.control.failed(self.task_id, reason=f"Script exited with code {code}", message="script failed")
        return True

    def terminate(self, grace: float = 10.0) -> None:
        """SIGTERM the script's process group, SIGKILL after ``grace`` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                return
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
