"""The one-account SDK child process: results, errors, and a timeout that stops the child's whole group."""

from __future__ import annotations

import ast
import subprocess
import sys
import time

import psutil
import pytest

from clearml_assets.sdk_process import SDKProcessError, run_in_sdk_process


def test_the_child_sees_only_the_given_clearml_variables(monkeypatch):
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "parent-key-must-not-leak")
    env = run_in_sdk_process("os:environ.copy", env={"CLEARML_API_HOST": "http://127.0.0.1:1"}, timeout=60)
    assert env["CLEARML_API_HOST"] == "http://127.0.0.1:1"
    assert "CLEARML_API_ACCESS_KEY" not in env


def test_an_exception_in_the_child_keeps_its_message():
    with pytest.raises(SDKProcessError) as err:
        run_in_sdk_process("json:loads", "{not json", env={}, timeout=60, what="parsing the answer")
    assert str(err.value).startswith("parsing the answer failed:")
    assert err.value.metadata["error_type"].value == "JSONDecodeError"


def test_a_timeout_stops_the_child_and_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = f"sleep 600 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(SDKProcessError) as err:
        run_in_sdk_process("subprocess:check_call", ["sh", "-c", script], env={}, timeout=3, what="a stuck upload")
    assert "a stuck upload did not finish within 3s and was stopped" in str(err.value)
    assert time.monotonic() - started < 60  # not the SDK's minutes of retries
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 60  # the kill is delivered; the kernel ends the process when it next runs
    while _running(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived the stop"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_child_loads_no_dagster_even_when_the_parent_is_the_dagster_cli(tmp_path):
    # The parent's __main__ imports Dagster, as the `dagster` CLI's does; a spawned multiprocessing child would
    # import it again. The SDK child must not pay for Dagster.
    main = tmp_path / "cli_like.py"
    main.write_text("import sys, dagster\n"
                    "from clearml_assets.sdk_process import run_in_sdk_process\n"
                    "if __name__ == '__main__':\n"
                    "    print(run_in_sdk_process('builtins:eval', \"sorted(m for m in __import__('sys').modules\"\n"
                    "                             \" if m.split('.')[0] in ('dagster', 'pandas', 'clearml_assets'))\","
                    " env={}, timeout=120))\n")
    out = subprocess.run([sys.executable, str(main)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert loaded == ["clearml_assets", "clearml_assets.lazy_exports"], loaded  # sdk_child runs as __main__
