"""bench_scale's Dagster deployment: its home and storage (PostgreSQL when installed), ``dagster dev``, GraphQL."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import scale_seed  # noqa: E402

ACCOUNT = "scale"
BIN = Path(sys.executable).parent
TASK_ASSET = [ACCOUNT, "clearml_task_archive"]


def load() -> str:
    """The load averages, for printing beside a figure."""
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ------------------------------------------------------------------------------------------ environment
@dataclasses.dataclass
class Deployment:
    """The Dagster side: its home, the environment of every Dagster process, the storage in use."""

    work: Path
    env: dict[str, str]
    storage: str
    pg: Any = None

    def write_yaml(self, max_concurrent_runs: int) -> None:
        base = self.pg.dagster_yaml(self.db) if self.pg else "telemetry:\n  enabled: false\n"
        queue = ("run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
                 f"  config:\n    max_concurrent_runs: {max_concurrent_runs}\n    dequeue_interval_seconds: 1\n")
        (Path(self.env["DAGSTER_HOME"]) / "dagster.yaml").write_text(base + queue)

    db = "dagster_scale"

    def instance(self):
        import dagster as dg

        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_")})
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])


def deployment(work: Path, info, choice: str) -> Deployment:
    """Dagster's home (PostgreSQL storage when installed, else SQLite) and the ``scale`` account's env."""
    home = work / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "DAGSTER_"))}
    suffix = ACCOUNT.upper()
    env.update({"DAGSTER_HOME": str(home), "CLEARML_ASSETS_HOME": str(work / "home"),
                "CLEARML_ASSETS_DEFAULT_ACCOUNT": ACCOUNT, "CLEARML_ASSETS_ARCHIVE_CRON": "off",
                f"CLEARML_KEY_{suffix}": info.access_key, f"CLEARML_SECRET_{suffix}": info.secret_key,
                f"CLEARML_API_HOST_{suffix}": info.api_host, f"CLEARML_FILES_HOST_{suffix}": info.files_host,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    deploy = Deployment(work, env, "sqlite")
    if choice != "sqlite":
        from pgserver import postgres_bin_dir, start_postgres

        if postgres_bin_dir() is not None:
            deploy.pg = start_postgres()
            deploy.pg.create_database(deploy.db)
            env["DAGSTER_PG_PASSWORD"] = deploy.pg.password
            deploy.storage = "postgres"
        elif choice == "postgres":
            raise SystemExit("--storage postgres: PostgreSQL is not installed (apt-get install -y postgresql)")
    deploy.write_yaml(0)
    return deploy


@contextmanager
def dagster_dev(deploy: Deployment, max_concurrent_runs: int, log: Path, extra_env: dict | None = None
                ) -> Iterator[str]:
    """``dagster dev`` (webserver and daemon) on the project's code location; yields its URL."""
    deploy.write_yaml(max_concurrent_runs)
    port = scale_seed.free_port("127.0.0.1")
    env = {**deploy.env, **(extra_env or {})}
    out = log.open("w")
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-m", "clearml_assets.definitions", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while not _answers(f"{url}/server_info"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dagster dev did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        graphql(url, "mutation { setNuxSeen }")
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 600) -> dict:
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
    resp.raise_for_status()
    body = resp.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {json.dumps(body['errors'])[:2000]}")
    return body["data"]
