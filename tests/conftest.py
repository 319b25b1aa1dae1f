"""Shared fixtures: local ClearML servers on free loopback ports and SDK subprocess runners."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from clearml_assets.local_server import LocalServer, LocalServerInfo
from clearml_assets.sdk_process import fastfail_config_file
from components import require_or_skip
from secrets_scan import scan_text, scan_tree, secrets_in_credential_files

REPO = Path(__file__).resolve().parents[1]
_CAPTURED: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep each test's captured output and failure text for the session's secrets scan."""
    text = report.longreprtext + "".join(content for _, content in report.sections)
    if text:
        _CAPTURED.append((f"output of {report.nodeid} ({report.when})", text))


@pytest.fixture(scope="session", autouse=True)
def no_key_left_behind(tmp_path_factory: pytest.TempPathFactory):
    """After the whole session: no key of any local server in files, run records, archives or output."""
    yield
    root = tmp_path_factory.getbasetemp()
    secrets = secrets_in_credential_files(root)
    findings = scan_tree(root, secrets)
    findings += [f for where, text in _CAPTURED for f in scan_text(text, secrets, where)]
    if findings:
        pytest.fail(f"{len(findings)} place(s) hold a ClearML key:\n" + "\n".join(map(str, findings[:50])),
                    pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory: pytest.TempPathFactory):
    """After the whole session: no process started in the session's temporary folders (a detached local server, a
    daemon) runs on. Each one left is waited for (its stop may be in flight), then stopped and named: its command
    line holds the folder of the test that started it."""
    yield
    root = f"{tmp_path_factory.getbasetemp()}{os.sep}"
    left = [(pid, cmd) for pid, cmd in _processes_mentioning(root) if not _exits(pid, 30.0)]
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        pytest.fail(f"{len(left)} process(es) outlived the tests that started them (killed now):\n"
                    + "\n".join(f"pid {pid}: {cmd[:300]}" for pid, cmd in left), pytrace=False)


def _processes_mentioning(text: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the running processes (not this one or its parent) whose command line holds
    ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text in cmd:
            found.append((int(entry.name), cmd))
    return found


def _exits(pid: int, limit: float) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``limit`` seconds (the bound only stops a leak from hanging)."""
    import time

    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def clearml_server(tmp_path: Path):
    """A local ClearML server (in-process thread) with its own data dir and key pair."""
    server = LocalServer(tmp_path / "server", api_port=0, files_port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sdk_env(info: LocalServerInfo, home: Path) -> dict[str, str]:
    """Environment for a real-SDK child process: one account, fresh HOME, bounded retries."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(info.env())
    env.update({
        "HOME": str(home),
        "CLEARML_TASK_NO_REUSE": "1",
        "CLEARML_CONFIG_FILE": str(fastfail_config_file(home)),
        "CLEARML_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def run_sdk_script(code: str, env: dict[str, str], timeout: float = 180, cwd: Path | None = None
                   ) -> subprocess.CompletedProcess:
    """Run ``code`` with the real clearml SDK in a subprocess; fail (never hang) on timeout.

    The script's stdout is returned; a non-zero exit fails the test with its output.
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"SDK script failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout[-5000:]}\n"
                    f"STDERR:\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture
def sdk_runner(clearml_server: LocalServer, tmp_path: Path):
    """Call ``sdk_runner(code, timeout=...)`` to run SDK code against ``clearml_server``."""
    env = sdk_env(clearml_server.info, tmp_path / "home")

    def run(code: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return run_sdk_script(code, env, timeout=timeout, cwd=tmp_path)

    run.env = env
    return run


def printed_json(proc: subprocess.CompletedProcess) -> dict:
    """The last JSON object a script printed on a line of its own."""
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


SDK_TASK_END = """
task.flush(wait_for_uploads=True)
print("REPORTED", task.id)
task.close()
"""


@pytest.fixture
def sdk_report(sdk_runner, tmp_path: Path):
    """Call ``sdk_report(code, *files, timeout=...)`` to run SDK code that reports into ``task``.

    The task is flushed (uploads included) and closed after ``code``. Returns the facts of the run:
    ``id``, the task's id, and for each of ``files`` the code wrote (in ``tmp_path``, its working
    folder), its stem mapped to the file's sha256.
    """
    def run(code: str, *files: str, timeout: float = 180) -> dict[str, str]:
        out = sdk_runner(textwrap.dedent(code) + SDK_TASK_END, timeout=timeout)
        task_id = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("REPORTED ")][-1]
        return {"id": task_id, **{Path(name).stem: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
                                  for name in files}}

    return run


def dagster_child_env(info: LocalServerInfo, dagster_home: Path, **extra: str) -> dict[str, str]:
    """Environment for a ``dagster`` child process whose definitions read the server from ``T_*`` variables.

    None of this process's ``CLEARML_*``; the server's hosts and credentials file as ``T_API``, ``T_WEB``,
    ``T_FILES`` and ``T_CREDS``; a new ``dagster_home``; the repository on ``PYTHONPATH``; then ``extra``.
    """
    dagster_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env.update(T_API=info.api_host, T_WEB=info.web_host, T_FILES=info.files_host,
               T_CREDS=str(Path(info.data_dir) / "credentials.json"), DAGSTER_HOME=str(dagster_home),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **extra)
    return env


@contextmanager
def server_world(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[SimpleNamespace]:
    """A local server in a new temporary folder ``name``, stopped on exit.

    Yields ``server``, ``tmp`` (the folder), ``resource`` (a :class:`ClearMLResource` of the server with
    its home in ``tmp/res``) and ``client`` (the resource's).
    """
    from clearml_assets.resource import ClearMLResource

    tmp = tmp_path_factory.mktemp(name)
    with LocalServer(tmp / "server", api_port=0, files_port=0) as server:
        resource = ClearMLResource.for_local_server(server.info, home=str(tmp / "res"))
        yield SimpleNamespace(server=server, tmp=tmp, resource=resource, client=resource.client())


def stop_embedded_server(home: Path) -> None:
    """Stop the embedded server the ``local`` account started under ``home`` (``CLEARML_ASSETS_HOME``)."""
    record = home / "server" / "server.json"
    if record.exists():
        try:
            os.kill(json.loads(record.read_text())["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on a free loopback port for the whole session (see ``pgserver.py``)."""
    from pgserver import postgres_bin_dir, start_postgres

    require_or_skip(None if postgres_bin_dir() else "PostgreSQL is not installed: apt-get install -y postgresql")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def dagster_storage(request, monkeypatch) -> dict:
    """Dagster instance ``overrides`` for SQLite (the default) or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return {}
    server = request.getfixturevalue("postgres_server")
    db = server.create_database(f"dagster_{os.getpid()}_{len(request.node.nodeid)}_{id(request.node)}")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", server.password)
    return {"storage": {"postgres": {"postgres_db": {
        "username": "dagster", "password": {"env": "DAGSTER_PG_PASSWORD"}, "hostname": server.host,
        "db_name": db, "port": server.port, "scheme": "postgresql+psycopg2"}}}}


@pytest.fixture
def dagster_instance(dagster_storage):
    """A Dagster test instance on SQLite and, as a second run of the test, on PostgreSQL."""
    import dagster as dg

    with dg.instance_for_test(overrides=dagster_storage or None) as instance:
        yield instance


# -- SeaweedFS (objectstore): a real S3 server for the session, a fresh bucket per test (see seaweedfs.py)
from seaweedfs import s3_bucket, seaweedfs  # noqa: E402,F401
from azurite import az_container, azurite  # noqa: E402,F401
