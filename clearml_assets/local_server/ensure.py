"""Find the embedded local server of a ``CLEARML_ASSETS_HOME``, or start it (detached) on demand."""

from __future__ import annotations

import fcntl
import json
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from .auth import load_or_create_credentials
from .runner import (
    DEFAULT_API_PORT, DEFAULT_FILES_PORT, DEFAULT_HOST, DEFAULT_WEB_PORT, LocalServerInfo,
    start_local_server_process,
)


def _port_free(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _answers(info: LocalServerInfo) -> bool:
    """Whether a server at ``info.api_host`` accepts this data dir's keys (so it is ours)."""
    try:
        resp = requests.get(f"{info.api_host}/auth.login", auth=(info.access_key, info.secret_key), timeout=2)
        return resp.status_code == 200 and "token" in (resp.json().get("data") or {})
    except (requests.RequestException, ValueError):
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def running_local_server(home: Path) -> LocalServerInfo | None:
    """The local server of ``home`` if one is running and accepts its keys, else None."""
    data_dir = Path(home).expanduser().resolve() / "server"
    record = data_dir / "server.json"
    if not record.exists():
        return None
    where = json.loads(record.read_text())
    cred = load_or_create_credentials(data_dir)[0]
    info = LocalServerInfo(where["api_host"], where["files_host"], where.get("web_host", ""),
                           cred.access_key, cred.secret_key, data_dir)
    return info if _answers(info) else None


def ensure_local_server(home: Path, timeout: float = 30.0, api_port: int = DEFAULT_API_PORT,
                        files_port: int = DEFAULT_FILES_PORT) -> LocalServerInfo:
    """Return the running local server of ``home``, starting it in the background if needed.

    The server keeps its data in ``<home>/server`` (where it records its address in ``server.json``)
    and its log in ``<home>/server.log``. It outlives the caller and is reused by later runs. It uses
    ``api_port``/``files_port`` (default 8008/8081) when they are free and other free ports otherwise,
    e.g. when another program or another home's server holds them.

    Args:
        home: The ``CLEARML_ASSETS_HOME`` folder.
        timeout: Seconds to wait for a new server to answer.
        api_port: Preferred API port.
        files_port: Preferred fileserver port.
    """
    home = Path(home).expanduser().resolve()
    with _locked(home / "server.lock"):
        info = running_local_server(home)
        if info is not None:
            return info
        api_port = api_port if _port_free(api_port) else 0
        files_port = files_port if _port_free(files_port) else 0
        proc = start_local_server_process(home / "server", api_port=api_port, files_port=files_port,
                                          timeout=timeout, log_file=home / "server.log", detach=True)
        info = proc.info
        web = f"http://127.0.0.1:{DEFAULT_WEB_PORT}"
        return LocalServerInfo(info.api_host, info.files_host, web, info.access_key, info.secret_key,
                               info.data_dir)
