"""A real Azure Blob Storage endpoint for the tests: Azurite (npm ``azurite``) on loopback.

``azurite-blob`` serves the Blob API on a free loopback port from a throw-away folder, with one storage account
whose key is random per session (``AZURITE_ACCOUNTS``): requests not signed with it are refused, as on Azure.
Readiness is polled (bounded), never slept for. ``.ci/run`` installs it into ``.ci/azurite``; elsewhere set
``AZURITE_BLOB`` to the ``azurite-blob`` executable (``npm install --prefix DIR azurite``).

Fixtures (registered in ``conftest.py``):

- ``azurite``: the session's :class:`Azurite` (started once, stopped at the end).
- ``az_container``: a fresh, empty container per test (deleted afterwards), as ``az://<name>``.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from components import free_port, missing_binary, require_or_skip

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "clearmlassets"
_START_TIMEOUT = 60.0


def azurite_binary() -> Path:
    """``$AZURITE_BLOB``, else ``.ci/azurite/node_modules/.bin/azurite-blob``, else ``azurite-blob`` on PATH."""
    candidates = [os.environ.get("AZURITE_BLOB"), str(REPO / ".ci" / "azurite" / "node_modules" / ".bin" /
                                                      "azurite-blob"), shutil.which("azurite-blob")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise RuntimeError("Azurite not found: `npm install --prefix .ci/azurite azurite` (.ci/run does it) or set "
                       "AZURITE_BLOB to the azurite-blob executable")


@dataclass
class Azurite:
    """A running ``azurite-blob``: its endpoint and the account's key."""

    folder: Path
    port: int
    key: str
    proc: subprocess.Popen

    @property
    def connection_string(self) -> str:
        """What ``AZURE_STORAGE_CONNECTION_STRING`` holds for this endpoint."""
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={self.key};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    def filesystem(self):
        """An adlfs filesystem on this endpoint."""
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_azurite(folder: Path) -> Azurite:
    """Start ``azurite-blob`` on a free loopback port with a random account key; wait until it answers."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    port = free_port()
    log = open(folder / "azurite.log", "wb")
    proc = subprocess.Popen([str(azurite_binary()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--location", str(folder), "--skipApiVersionCheck", "--disableProductStyleUrl"],
                            env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    server = Azurite(folder, port, key, proc)
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        try:
            server.filesystem().ls("")
            return server
        except Exception as exc:  # noqa: BLE001 - any failure before the deadline means "not up yet"
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"azurite-blob did not answer ({exc}); see {folder / 'azurite.log'}") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    """The session's Azurite (Blob API on a free loopback port, one account with a random key)."""
    require_or_skip(missing_binary(azurite_binary))
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def az_container(azurite: Azurite) -> Iterator[str]:
    """A fresh, empty container on the session's Azurite, as ``az://<name>``; deleted after the test."""
    name = f"t{uuid.uuid4().hex[:20]}"
    fs = azurite.filesystem()
    fs.mkdir(name)
    yield f"az://{name}"
    fs.rm(name, recursive=True)
