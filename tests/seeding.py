"""Seed tasks quickly with raw REST calls (for the tests and the benchmarks), and read them back.

Uses the same requests the ClearML SDK sends (``tasks.create``, ``events.add_batch`` as JSON lines,
fileserver multipart POST to ``/`` with the target path as field name, ``tasks.add_or_update_artifacts``,
``tasks.completed``), without the SDK's background reporting delays. The login and the wire format are
:mod:`server_api`'s, so the tests hold one raw HTTP client.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from server_api import endpoint_url, json_lines, login_session

from clearml_assets.client import ClearMLClient
from clearml_assets.local_server import LocalServer, LocalServerInfo


@dataclass
class DemoSpec:
    """What each seeded task holds."""

    scalar_series: int = 10
    """Series of the metric ``val``: the first four Ultralytics' ``metrics/mAP50(B)``, ``metrics/mAP50-95(B)``,
    ``metrics/precision(B)`` and ``metrics/recall(B)``, the others ``metrics/series_<n>``."""
    points_per_series: int = 500
    """Points of each series, at iterations 0, 1, ..."""
    log_lines: int = 2000
    """Console lines (level info), four to a millisecond."""
    artifacts: int = 3
    """Artifacts of random bytes on the fileserver, ``art0``, ``art1``, ..."""
    artifact_bytes: int = 1 << 20
    """Size of each artifact."""
    plots: int = 2
    """Plot events ``confusion``/``matrix``, one an iteration."""
    debug_images: int = 2
    """Debug images ``samples``/``batch`` (PNG signature and random bytes) on the fileserver, one an iteration."""


def _path_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".")[:64] or "_"


class RawSeeder:
    """Creates projects and tasks on a ClearML server with raw HTTP calls.

    Args:
        api_host: API server URL.
        files_host: Fileserver URL.
        access_key: API access key.
        secret_key: API secret key.
    """

    def __init__(self, api_host: str, files_host: str, access_key: str, secret_key: str):
        self.api_host = api_host.rstrip("/")
        self.files_host = files_host.rstrip("/")
        self.session, self.token = login_session(self.api_host, access_key, secret_key, timeout=30, pool_size=16)

    @classmethod
    def of(cls, server: LocalServer | LocalServerInfo) -> "RawSeeder":
        """A seeder logged in to a local server with its key pair."""
        info = server.info if isinstance(server, LocalServer) else server
        return cls(info.api_host, info.files_host, info.access_key, info.secret_key)

    def call(self, endpoint: str, **fields: Any) -> dict:
        """POST a JSON request; returns ``data``."""
        resp = self.session.post(endpoint_url(self.api_host, endpoint), json=fields, timeout=120)
        body = resp.json()
        if resp.status_code != 200:
            raise RuntimeError(f"{endpoint} failed: {body.get('meta', {}).get('result_msg')}")
        return body.get("data") or {}

    def add_events(self, events: list[dict]) -> None:
        """``events.add_batch`` with a JSON lines body (as the SDK sends it)."""
        resp = self.session.post(endpoint_url(self.api_host, "events.add_batch"), data=json_lines(events),
                                 headers={"Content-Type": "application/json-lines"}, timeout=300)
        if resp.status_code != 200:
            raise RuntimeError(f"events.add_batch failed: {resp.text[:500]}")

    def upload(self, path: str, data: bytes) -> str:
        """Upload ``data`` to the fileserver at ``path``; returns its URL."""
        resp = self.session.post(f"{self.files_host}/", files={path: (path, data)}, timeout=300)
        resp.raise_for_status()
        return f"{self.files_host}{path}"

    def project(self, name: str) -> str:
        """Id of the project ``name`` (created if missing)."""
        found = self.call("projects.get_all", name=f"^{re.escape(name)}$", only_fields=["id"]).get("projects")
        if found:
            return found[0]["id"]
        return self.call("projects.create", name=name, description="demo")["id"]

    def seed_task(self, project_id: str, project_name: str, name: str, spec: DemoSpec, index: int = 0,
                  complete: bool = True) -> str:
        """Create one task holding ``spec``'s data; returns its id."""
        task_id = self.call("tasks.create", name=name, type="training", project=project_id)["id"]
        self.call("tasks.started", task=task_id, force=True)
        now = int(time.time() * 1000)
        logs = [{"type": "log", "task": task_id, "timestamp": now + i // 4, "level": "info", "worker": "demo",
                 "msg": f"{name} line {i:07d}"} for i in range(spec.log_lines)]
        for start in range(0, len(logs), 20_000):
            self.add_events(logs[start:start + 20_000])
        scalars = []
        for s in range(spec.scalar_series):
            metric, variant = ("val", f"metrics/series_{s}") if s >= 4 else \
                ("val", ("metrics/mAP50(B)", "metrics/mAP50-95(B)", "metrics/precision(B)",
                         "metrics/recall(B)")[s])
            for it in range(spec.points_per_series):
                scalars.append({"type": "training_stats_scalar", "task": task_id, "timestamp": now + it,
                                "iter": it, "metric": metric, "variant": variant,
                                "value": (it + 1) / (spec.points_per_series + s + 1)})
        for start in range(0, len(scalars), 20_000):
            self.add_events(scalars[start:start + 20_000])
        extra = [{"type": "plot", "task": task_id, "timestamp": now, "iter": p, "metric": "confusion",
                  "variant": "matrix", "plot_str": json.dumps({"data": [{"z": [[p, 1], [2, 3]]}]})}
                 for p in range(spec.plots)]
        # the fileserver path is only a place for the bytes; hostile names must not break seeding
        prefix = f"/{_path_part(project_name)}/{_path_part(name)}.{task_id}"
        for d in range(spec.debug_images):
            url = self.upload(f"{prefix}/metrics/samples/batch/samples_batch_{d:08d}.png",
                              b"\x89PNG\r\n\x1a\n" + os.urandom(512))
            extra.append({"type": "training_debug_image", "task": task_id, "timestamp": now, "iter": d,
                          "metric": "samples", "variant": "batch", "key": f"samples/batch/{d}", "url": url})
        if extra:
            self.add_events(extra)
        artifacts = []
        for a in range(spec.artifacts):
            data = os.urandom(spec.artifact_bytes)
            url = self.upload(f"{prefix}/artifacts/art{a}/art{a}.bin", data)
            artifacts.append({"key": f"art{a}", "type": "custom", "mode": "output", "uri": url,
                              "content_size": len(data), "hash": hashlib.sha256(data).hexdigest(),
                              "timestamp": int(time.time()),
                              "type_data": {"preview": f"art{a}: {len(data)} bytes",
                                            "content_type": "application/octet-stream"}})
        if artifacts:
            self.call("tasks.add_or_update_artifacts", task=task_id, artifacts=artifacts, force=True)
        if complete:
            self.call("tasks.completed", task=task_id, force=True)
        return task_id

    def seed_project(self, project_name: str, n_tasks: int, spec: DemoSpec, workers: int = 4) -> list[str]:
        """Seed ``n_tasks`` completed tasks in ``project_name`` (in parallel); returns their ids."""
        project_id = self.project(project_name)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda i: self.seed_task(project_id, project_name, f"task_{i:04d}", spec, i),
                                 range(n_tasks)))


def client_of(server: LocalServer | LocalServerInfo, account: str = "personal") -> ClearMLClient:
    """The package's client on a local server's key pair, as an account of ``account``."""
    info = server.info if isinstance(server, LocalServer) else server
    return ClearMLClient(info.api_host, info.access_key, info.secret_key, account=account,
                         files_host=info.files_host, web_host=info.web_host)
