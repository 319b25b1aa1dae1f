"""Where a local server listens and how to tell whether one serves a data folder: its :class:`LocalServerInfo`, its
``server.json`` record, the data folder's ``serve.lock``, port checks and readiness."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

DEFAULT_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8008
DEFAULT_FILES_PORT = 8081
DEFAULT_WEB_PORT = 8080


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LocalServerInfo:
    """Where a running local server is and the key pair a client uses."""

    api_host: str
    files_host: str
    web_host: str
    access_key: str
    secret_key: str
    data_dir: Path

    @property
    def web_port(self) -> int | None:
        """Port of the web view (None when the server has none)."""
        return urlsplit(self.web_host).port if self.web_host else None

    def env(self) -> dict[str, str]:
        """The ``CLEARML_*`` variables a ClearML SDK client must set."""
        return {
            "CLEARML_API_HOST": self.api_host,
            "CLEARML_WEB_HOST": self.web_host,
            "CLEARML_FILES_HOST": self.files_host,
            "CLEARML_API_ACCESS_KEY": self.access_key,
            "CLEARML_API_SECRET_KEY": self.secret_key,
        }


class PortInUse(RuntimeError):
    """A port the local server should listen on is taken by another program."""


def check_ports_free(host: str, ports: dict[str, int | None]) -> None:
    """Raise :class:`PortInUse` naming the first of ``ports`` (purpose -> port) that cannot be bound on
    ``host`` (bound as uvicorn does, with ``SO_REUSEADDR``), so a taken port is a clear error before
    anything starts instead of one of the three servers dying with the others running."""
    for purpose, port in ports.items():
        if not port:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                flag = {"API": "--api-port", "files": "--files-port", "web view": "--web-port"}.get(purpose, "")
                raise PortInUse(f"port {port} ({purpose}) on {host} is in use ({exc.strerror}); stop what "
                                f"listens there or choose another port{' with ' + flag if flag else ''}") from exc


class DataDirInUse(RuntimeError):
    """Another local server already serves this data folder (two would corrupt its database)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        where = ""
        record = read_server_file(self.data_dir)
        if record:
            where = f" at {record.get('api_host')} (pid {record.get('pid')})"
        super().__init__(
            f"the data directory {self.data_dir} is already served by a local server{where}; use that server, "
            f"or stop it first with `clearml-assets local-server stop --data-dir {self.data_dir}`")


def wait_until_ready(api_host: str, timeout: float = 20.0) -> None:
    """Poll ``debug.ping`` until it answers or raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{api_host}/debug.ping", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"local ClearML server at {api_host} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


def lock_is_held(data_dir: Path) -> bool:
    """Whether some process holds the data folder's ``serve.lock`` (a server serves it)."""
    path = Path(data_dir) / "serve.lock"
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def write_server_file(data_dir: Path, info: LocalServerInfo, pid: int) -> None:
    """Record where a running server listens (``server.json``; no secrets in it)."""
    path = Path(data_dir) / "server.json"
    tmp = path.with_name(f".server.json.{pid}")
    tmp.write_text(json.dumps({"api_host": info.api_host, "files_host": info.files_host,
                               "web_host": info.web_host, "web_port": info.web_port, "pid": pid}))
    os.replace(tmp, path)


def read_server_file(data_dir: Path) -> dict | None:
    """The ``server.json`` record of a data folder, or None."""
    try:
        return json.loads((Path(data_dir) / "server.json").read_text())
    except (OSError, ValueError):
        return None


def remove_server_file(data_dir: Path, pid: int) -> None:
    """Remove ``server.json`` if it still records ``pid`` (a newer server's record stays)."""
    record = read_server_file(data_dir)
    if record and record.get("pid") == pid:
        (Path(data_dir) / "server.json").unlink(missing_ok=True)


SDK_CONFIG_FILE = "clearml.conf"


def sdk_config_file(info: LocalServerInfo) -> Path:
    """Write (when it changed) and return ``<data_dir>/clearml.conf`` (mode 0600): the ClearML SDK settings of
    this server (hosts and key pair), for ``CLEARML_CONFIG_FILE=<path>``."""
    path = Path(info.data_dir) / SDK_CONFIG_FILE
    text = (f"# The ClearML SDK settings of the local server of {info.data_dir} (written by clearml-assets):\n"
            f"#   export CLEARML_CONFIG_FILE={path}\n"
            "api {\n"
            f"  api_server: {json.dumps(info.api_host)}\n"
            f"  web_server: {json.dumps(info.web_host or info.api_host)}\n"
            f"  files_server: {json.dumps(info.files_host)}\n"
            f"  credentials {{ access_key: {json.dumps(info.access_key)}, "
            f"secret_key: {json.dumps(info.secret_key)} }}\n"
            "}\n")
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(f".{SDK_CONFIG_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
