"""Every object-store read has a total deadline and a size cap (issue 26, item 5, for files ClearML recorded on
``s3://``/``gs://``/``azure://``): the size a ``HEAD`` declares, itself at most ``CLEARML_ASSETS_OBJECT_MAX_MIB``,
and one deadline over the ``HEAD``, the ``GET`` and every byte. Errors name the account, the endpoint and the
object, and leave nothing at the destination.

The hostile endpoint is a loopback server speaking just enough S3 for a ``HEAD`` and a ``GET``, configured as the
account's own endpoint (so the account's credentials may go there): it drips, or declares or sends too much.
"""

from __future__ import annotations

import hashlib
import json
import os
import socketserver
import threading
import time
from pathlib import Path

import pytest

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.errors import ClearMLConfigError, ClearMLConnectionError, ClearMLRequestError
from clearml_assets.resource import ClearMLResource
from clearml_assets.storage import ObjectReadLimits, fetch_object
from seeding import DemoSpec, RawSeeder

MIB = 1 << 20
DRIP_BOUND = 120.0  # the drip server gives up after this long: a read without a deadline fails differently


class HostileS3(socketserver.ThreadingTCPServer):
    """``HEAD``/``GET /<bucket>/<key>`` on a free loopback port, misbehaving as ``mode`` says.

    Modes: ``drip_body`` (the ``HEAD`` and the ``GET``'s headers at once, then one body byte every 0.2 s),
    ``drip_head`` (the ``HEAD``'s answer one byte every 0.2 s), ``huge_head`` (the ``HEAD`` declares 300 MB), ``more_than_declared``
    (the ``HEAD`` declares 1,000 bytes, the ``GET`` sends 5 MiB at once).

    Attributes:
        requests: ``(method, path)`` of every request received.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str):
        self.mode = mode
        self.requests: list[tuple[str, str]] = []
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True, name=f"hostile-s3-{mode}").start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


class _Handler(socketserver.StreamRequestHandler):
    server: HostileS3

    def handle(self) -> None:
        while not self.server.stop.is_set():
            line = self.rfile.readline()
            if not line:
                return
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # the request's headers (no body on HEAD/GET)
            method, path = line.decode("latin-1").split()[:2]
            self.server.requests.append((method, path))
            if not self._answer(method):
                return

    def _answer(self, method: str) -> bool:
        mode = self.server.mode
        if mode == "drip_head":
            self._drip(b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * MIB)  # headers that never end
            return False
        if mode == "drip_body" and method == "GET":
            self.wfile.write(self._head(10 * MIB))
            self._drip(b"x" * (10 * MIB))
            return False
        declared = {"huge_head": 300_000_000, "drip_body": 10 * MIB}.get(mode, 1000)
        if method == "HEAD":
            self.wfile.write(self._head(declared))
            return True
        self.wfile.write(self._head(5 * MIB) + os.urandom(5 * MIB))
        return True

    def _drip(self, data: bytes) -> None:
        end = time.monotonic() + DRIP_BOUND
        for i in range(len(data)):
            if self.server.stop.wait(0.2) or time.monotonic() > end:
                return
            try:
                self.wfile.write(data[i:i + 1])
            except OSError:  # the client gave up
                return

    @staticmethod
    def _head(length: int) -> bytes:
        return (f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\n"
                'ETag: "0123456789abcdef0123456789abcdef"\r\nLast-Modified: Sun, 06 Dec 2026 08:00:00 GMT\r\n'
                "\r\n").encode()


def _options(endpoint: str) -> dict:
    return {"s3://": {"key": "AKHOSTILE", "secret": "hostile-secret",
                      "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                      "config_kwargs": {"retries": {"max_attempts": 1}}}}


@pytest.fixture
def hostile():
    servers: list[HostileS3] = []

    def start(mode: str) -> HostileS3:
        servers.append(HostileS3(mode))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _nothing_left(dest: Path) -> bool:
    return not dest.exists() and list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("mode", ["drip_body", "drip_head"])
def test_an_endpoint_that_drips_fails_at_the_reads_deadline(hostile, mode, tmp_path: Path):
    server = hostile(mode)
    dest = tmp_path / "out" / "obj.bin"
    began = time.monotonic()
    with pytest.raises(ClearMLConnectionError) as caught:
        fetch_object("s3://bucket/obj.bin", dest, _options(server.endpoint), account="personal",
                     limits=ObjectReadLimits(deadline_seconds=3, min_bytes_per_second=10 * MIB))
    text = str(caught.value)
    assert "did not finish within its" in text and "deadline" in text
    assert "'personal'" in text and server.endpoint in text and "s3://bucket/obj.bin" in text
    assert "hostile-secret" not in text
    assert time.monotonic() - began < DRIP_BOUND  # ended by the deadline, not by the drip running out
    assert server.requests and _nothing_left(dest)


def test_a_declared_size_over_the_cap_is_refused_before_the_body(hostile, tmp_path: Path):
    server = hostile("huge_head")
    dest = tmp_path / "out" / "obj.bin"
    with pytest.raises(ClearMLRequestError) as caught:
        fetch_object("s3://bucket/obj.bin", dest, _options(server.endpoint), account="personal",
                     limits=ObjectReadLimits(max_bytes=64 * MIB))
    text = str(caught.value)
    assert "declared as 300,000,000 bytes" in text and "CLEARML_ASSETS_OBJECT_MAX_MIB" in text
    assert "'personal'" in text and server.endpoint in text and "s3://bucket/obj.bin" in text
    assert [m for m, _ in server.requests] == ["HEAD"]  # the body was never asked for
    assert _nothing_left(dest)


def test_a_body_longer_than_declared_is_cut_at_the_declared_size(hostile, tmp_path: Path):
    server = hostile("more_than_declared")
    dest = tmp_path / "out" / "obj.bin"
    with pytest.raises(ClearMLRequestError) as caught:
        fetch_object("s3://bucket/obj.bin", dest, _options(server.endpoint), account="personal")
    text = str(caught.value)
    assert "sent more than declared" in text and "cap of 1,000 bytes" in text
    assert "'personal'" in text and server.endpoint in text
    assert [m for m, _ in server.requests] == ["HEAD", "GET"] and _nothing_left(dest)


def test_a_seaweedfs_object_over_the_cap(s3_bucket, tmp_path: Path, monkeypatch):
    data = os.urandom(3 * MIB + 5)
    s3_bucket.filesystem().pipe(f"{s3_bucket.name}/runs/big.bin", data)
    url = f"{s3_bucket.url}/runs/big.bin"
    options = {"s3://": s3_bucket.server.storage_options()}
    dest = tmp_path / "out" / "big.bin"

    monkeypatch.setenv("CLEARML_ASSETS_OBJECT_MAX_MIB", "2")  # the configured cap, read from the environment
    with pytest.raises(ClearMLRequestError) as caught:
        fetch_object(url, dest, options, account="personal")
    text = str(caught.value)
    assert f"declared as {len(data):,} bytes" in text and "at most 2 MiB per object" in text
    assert "'personal'" in text and s3_bucket.server.endpoint_url in text and url in text
    assert s3_bucket.server.secret_key not in text and _nothing_left(dest)

    monkeypatch.setenv("CLEARML_ASSETS_OBJECT_MAX_MIB", "4")  # under the cap: read whole, byte for byte
    digest = hashlib.sha256()
    assert fetch_object(url, dest, options, account="personal", digest=digest) == len(data)
    assert dest.read_bytes() == data and digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_an_artifact_over_the_cap_makes_the_export_incomplete_until_the_cap_allows_it(clearml_server, s3_bucket,
                                                                                      tmp_path: Path, monkeypatch):
    """Through the exporter: the artifact is recorded failed with the error, the archive is ``incomplete`` (never
    current), and the run after the cap was raised exports it whole."""
    server = s3_bucket.server
    big, small = os.urandom(3 * MIB), os.urandom(5000)
    fs = s3_bucket.filesystem()
    fs.pipe(f"{s3_bucket.name}/runs/big.bin", big)
    fs.pipe(f"{s3_bucket.name}/runs/small.bin", small)
    seaweed = server.endpoint_url.split("://", 1)[1]
    seeder = RawSeeder.of(clearml_server)
    task_id = seeder.seed_task(seeder.project("caps"), "caps", "big artifact", DemoSpec(1, 2, 0, 0, 0, 0, 0),
                               complete=False)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": k, "type": "custom", "mode": "output", "uri": f"s3://{seaweed}/{s3_bucket.name}/runs/{k}.bin"}
        for k in ("big", "small")])
    seeder.call("tasks.completed", task=task_id, force=True)
    info = clearml_server.info
    env = {"CLEARML_KEY_TEAM": info.access_key, "CLEARML_SECRET_TEAM": info.secret_key,
           "CLEARML_API_HOST_TEAM": info.api_host, "CLEARML_WEB_HOST_TEAM": info.web_host,
           "CLEARML_FILES_HOST_TEAM": info.files_host, "CLEARML_S3_KEY_TEAM": server.access_key,
           "CLEARML_S3_SECRET_TEAM": server.secret_key, "CLEARML_S3_ENDPOINT_TEAM": server.endpoint_url,
           "CLEARML_S3_REGION_TEAM": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = ClearMLResource.from_env(env, home=str(tmp_path / "home")).client("team")
    exporter = ClearMLTaskExporter(client, "team", tmp_path / "exports")

    monkeypatch.setenv("CLEARML_ASSETS_OBJECT_MAX_MIB", "1")
    first = exporter.export_task(task_id)
    records = {a["key"]: a["download"] for a in json.loads((first.folder / "artifacts" / "index.json").read_text())}
    assert records["small"]["status"] == "ok" and records["big"]["status"] == "failed"
    error = records["big"]["error"]
    assert "'team'" in error and server.endpoint_url in error and "runs/big.bin" in error and "1 MiB" in error
    assert server.secret_key not in error and first.manifest["status"] == "incomplete"
    assert not any(p.name.startswith("big") or p.name.endswith(".part") for p in first.folder.rglob("*"))

    monkeypatch.setenv("CLEARML_ASSETS_OBJECT_MAX_MIB", "4")
    second = exporter.export_task(task_id)
    records = {a["key"]: a["download"] for a in json.loads((second.folder / "artifacts" / "index.json").read_text())}
    assert not second.skipped and second.manifest["status"] == "ok" and records["big"]["status"] == "ok"
    assert (second.folder / records["big"]["file"]).read_bytes() == big


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_limits_from_the_environment_are_checked(value):
    with pytest.raises(ClearMLConfigError, match="CLEARML_ASSETS_OBJECT_DEADLINE_SECONDS"):
        ObjectReadLimits.from_env({"CLEARML_ASSETS_OBJECT_DEADLINE_SECONDS": value})
    limits = ObjectReadLimits.from_env({"CLEARML_ASSETS_OBJECT_MAX_MIB": "1.5",
                                        "CLEARML_ASSETS_OBJECT_MIN_KIB_PER_SECOND": "512"})
    assert limits.max_bytes == 3 * MIB // 2 and limits.seconds_for(MIB) == limits.deadline_seconds + 2
