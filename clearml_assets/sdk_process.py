"""Run ClearML SDK work in a child process configured for exactly one account.

The SDK's credentials and session are process-global, it retries for minutes against a
dead server, and it kills its own process when a task's status changes under it. So every
write that needs the SDK's global ``Task`` (datasets, training) runs here: a freshly
spawned interpreter whose environment names one account and a bounded-retry clearml.conf,
with a hard timeout enforced by the parent.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from .errors import ClearMLAssetsError

FASTFAIL_CONF = """
api {
  http {
    retries { total: 2, connect: 2, read: 2, redirect: 2, status: 2, backoff_factor: 0.2, backoff_max: 2.0 }
    wait_on_maintenance_forever: false
  }
}
sdk {
  development {
    report_use_subprocess: false
    worker { report_period_sec: 2, ping_period_sec: 30 }
  }
  http { download { max_retries: 3 } }
  network { file_upload_retries: 2 }
}
"""


def fastfail_config_file(folder: Path | None = None) -> Path:
    """Write (once) and return a clearml.conf with bounded retries and in-process reporting."""
    folder = Path(folder or Path(tempfile.gettempdir()) / "clearml_assets")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "clearml-fastfail.conf"
    if not path.exists() or path.read_text() != FASTFAIL_CONF:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(FASTFAIL_CONF)
        os.replace(tmp, path)
    return path


class SDKProcessError(ClearMLAssetsError):
    """The child process running ClearML SDK work raised, died or timed out."""


def _signal_group(proc: Any, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """End a running child and its process group now: SIGTERM, then after ``grace`` seconds SIGKILL to what is
    left of the group (what the child started may outlive it)."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    _wait(proc, grace)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _wait(proc: subprocess.Popen, seconds: float) -> None:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


def _start_child(env: dict[str, str], call: tuple) -> tuple[subprocess.Popen, Connection]:
    """``python -m clearml_assets.sdk_child`` in its own process group (a stop reaches the SDK's reporter and
    the data loaders it starts), with only ``env``'s account; ``call`` goes to it on stdin."""
    read_fd, write_fd = os.pipe()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))} | env
    try:
        proc = subprocess.Popen([sys.executable, "-m", "clearml_assets.sdk_child", str(write_fd)],
                                stdin=subprocess.PIPE, env=child_env, pass_fds=(write_fd,), process_group=0)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        proc.stdin.write(pickle.dumps(call))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died at start: the missing answer says so
    return proc, Connection(read_fd, writable=False)


def run_in_sdk_process(
    target: Callable[..., Any] | str,
    *args: Any,
    env: dict[str, str],
    timeout: float = 3600.0,
    what: str = "ClearML SDK work",
    **kwargs: Any,
) -> Any:
    """Call ``target(*args, **kwargs)`` in a spawned process whose only account is ``env``.

    Args:
        target: A module-level function, or ``"module:function"``.
        env: ``CLEARML_*`` variables of the one account (see ``ClearMLResource.sdk_env``).
        timeout: Seconds before the child is killed and this raises.
        what: Words for error messages ("dataset version raw", ...).

    Returns:
        The function's (picklable) return value.

    Raises:
        SDKProcessError: The function raised (its message is kept), the child died, or timed out.
    """
    if not isinstance(target, str):
        target = f"{target.__module__}:{target.__qualname__}"
    proc, parent_conn = _start_child(env, (sys.path, target, args, kwargs))
    answered = False
    try:
        if not parent_conn.poll(timeout):
            _stop(proc)
            raise SDKProcessError(f"{what} did not finish within {timeout:.0f}s and was stopped.")
        try:
            status, payload = parent_conn.recv()
            answered = True
        except EOFError:
            _wait(proc, 5)
            raise SDKProcessError(
                f"{what} died without a result (exit code {proc.returncode}). If it is 137/-9 the "
                "process was killed (out of memory, or the ClearML SDK stopped it because the task's "
                "status changed on the server)."
            ) from None
    finally:
        if answered:
            _wait(proc, 10)  # finishing its own clean-up (the SDK's flush); an interrupt stops it at once
        _stop(proc)
        parent_conn.close()
    if status == "error":
        name, message, tb = payload
        raise SDKProcessError(f"{what} failed: {message}", metadata={"error_type": name, "traceback": tb[-4000:]})
    return payload
