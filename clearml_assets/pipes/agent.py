"""Start a real ``clearml-agent daemon`` that runs tasks with this very Python environment.

For a try-out against the embedded server and for the tests: virtualenv mode without creating a
virtualenv or installing anything (``CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL`` with
``CLEARML_AGENT_SKIP_PIP_VENV_INSTALL`` naming the interpreter), no Docker, no git. On a GPU machine
against a real ClearML server, run ``clearml-agent daemon --queue NAME`` as ClearML documents instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

AGENT_CONF = """
agent {{
  worker_id: "{worker}"
  worker_name: "{worker}"
  venvs_dir: "{home}/venvs"
  vcs_cache {{ enabled: false }}
  venv_update {{ enabled: false }}
  pip_download_cache {{ enabled: false }}
  reload_config: false
  package_manager {{ type: pip }}
  python_binary: "{python}"
  ignore_requested_python_version: true
  # The agent prints its configuration into every task's console: keep the access key out of it too.
  sanitize_config_printout {{ hide_secrets: ["secret", "pass", "token", "account_key", "contents", "access_key"] }}
}}
sdk {{
  development {{ report_use_subprocess: false }}
}}
api {{
  api_server: "{api_host}"
  web_server: "{web_host}"
  files_server: "{files_host}"
  credentials {{ access_key: "{access_key}", secret_key: "{secret_key}" }}
  http {{ retries {{ total: 2, connect: 2, read: 2, redirect: 2, status: 2, backoff_factor: 0.2, backoff_max: 2.0 }} }}
}}
"""


def agent_executable() -> str:
    """The ``clearml-agent`` script installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("clearml-agent")
    found = str(beside) if beside.exists() else shutil.which("clearml-agent")
    if not found:
        raise FileNotFoundError("clearml-agent is not installed: pip install clearml-agent")
    return found


@dataclass
class LocalAgent:
    """A running ``clearml-agent daemon`` child; stop it with :meth:`stop` (or kill it to simulate a crash)."""

    process: subprocess.Popen
    worker: str
    queue: str
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Signal the agent's process group and wait for it (SIGKILL after ``timeout``)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass

    def log(self) -> str:
        """What the agent printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_local_agent(queue: str, sdk_env: Mapping[str, str], home: Path, *, worker: str = "local-agent",
                      python: str | None = None, extra_env: Mapping[str, str] | None = None) -> LocalAgent:
    """Start ``clearml-agent daemon --queue QUEUE --foreground`` reusing ``python`` (default: this one).

    Args:
        queue: Queue name (created by the agent if missing).
        sdk_env: ``CLEARML_*`` variables of one account (host and keys; ``ClearMLResource.sdk_env``).
        home: Folder for the agent's HOME, configuration (holding the keys, mode 0600), logs and working
            copies.
        worker: Worker id the agent registers.
        python: Interpreter that runs the tasks; it must have the tasks' packages installed.
        extra_env: More variables for the agent and the tasks it runs (e.g. ``PYTHONPATH``).
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    python = python or sys.executable
    conf = home / "clearml-agent.conf"
    # Keys in a 0600 file rather than the environment: the agent echoes an access key taken from the
    # environment into each task's console.
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(AGENT_CONF.format(
            worker=worker, home=home.as_posix(), python=python, api_host=sdk_env["CLEARML_API_HOST"],
            web_host=sdk_env.get("CLEARML_WEB_HOST", ""), files_host=sdk_env.get("CLEARML_FILES_HOST", ""),
            access_key=sdk_env["CLEARML_API_ACCESS_KEY"], secret_key=sdk_env["CLEARML_API_SECRET_KEY"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update({
        "HOME": str(home), "CLEARML_CONFIG_FILE": str(conf), "CLEARML_WORKER_ID": worker,
        "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL": "1", "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL": python,
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("CLEARML_TASK_ID", None)
    env.update(extra_env or {})
    log_path = home / f"agent-{worker}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([agent_executable(), "--config-file", str(conf), "daemon", "--queue", queue,
                                 "--create-queue", "--foreground", "--cpu-only"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=home)
    return LocalAgent(process=proc, worker=worker, queue=queue, log_path=log_path)
