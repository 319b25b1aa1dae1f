"""The one-account SDK child process: results, errors, and a timeout that stops the child's whole group."""

from __future__ import annotations

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
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
