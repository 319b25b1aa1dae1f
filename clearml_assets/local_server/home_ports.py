"""The ports of a home's local server, chosen once and kept, so that every link recorded to it keeps working.

The first start takes the preferred ports (8008/8081/8080) or, where one is taken, a free one, and records what it
got in ``<data_dir>/ports.json``. Every later start uses the recorded ports: the web view and fileserver links
written into Dagster metadata, ``task.json`` files and printed summaries point at them. A recorded port that another
program holds is an error naming the port and that program (never a silent move to another port); an explicit
choice (``CLEARML_ASSETS_LOCAL_<PART>_PORT``, ``local-server start --<part>-port``) replaces the record.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import psutil

from .server_info import free_port

PORTS_FILE = "ports.json"
PARTS = {"api": ("API", "--api-port"), "files": ("fileserver", "--files-port"), "web": ("web view", "--web-port")}


class HomePortTaken(RuntimeError):
    """A port recorded for a home's server is held by another program (the message says which and what to do)."""


def port_free(port: int, host: str) -> bool:
    """Whether ``port`` can be listened on at ``host`` (bound as uvicorn binds: ``SO_REUSEADDR``, so the
    ``TIME_WAIT`` connections a stopped server leaves behind do not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def recorded_ports(data_dir: Path) -> dict[str, int]:
    """The ports recorded for the server of ``data_dir`` (empty before its first start)."""
    try:
        found = json.loads((Path(data_dir) / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in found.items() if k in PARTS and isinstance(v, int) and 0 < v < 65536}


def record_ports(data_dir: Path, ports: dict[str, int | None]) -> None:
    """Record the ports a server of ``data_dir`` started on (a part without a port keeps its record)."""
    path = Path(data_dir) / PORTS_FILE
    merged = {**recorded_ports(data_dir), **{k: v for k, v in ports.items() if v}}
    tmp = path.with_name(f".{PORTS_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(merged))
    os.replace(tmp, path)


def choose_ports(data_dir: Path, host: str, preferred: dict[str, int | None],
                 explicit: dict[str, int | None]) -> dict[str, int | None]:
    """The ports the server of ``data_dir`` starts on.

    Args:
        data_dir: The server's data folder (its ``ports.json``).
        host: The interface it binds.
        preferred: Per part (``api``, ``files``, ``web``), the port to try at the first start (0: any free port;
            None: no such server, only for ``web``).
        explicit: Parts the user chose a port for this time (they replace the record; 0: any free port).

    Returns:
        The port per part (None: no web view).

    Raises:
        HomePortTaken: A recorded or explicitly chosen port is held by another program.
    """
    recorded = recorded_ports(data_dir)
    ports: dict[str, int | None] = {}
    for part, wanted in preferred.items():
        if part in explicit:
            port = explicit[part]
            ports[part] = free_port(host) if port == 0 else port
            if port:
                _require_free(port, part, host, data_dir, recorded=False)
        elif part in recorded and wanted is not None:
            _require_free(recorded[part], part, host, data_dir, recorded=True)
            ports[part] = recorded[part]
        else:
            ports[part] = None if wanted is None else (wanted if wanted and port_free(wanted, host)
                                                       else free_port(host))
    return ports


def _require_free(port: int, part: str, host: str, data_dir: Path, recorded: bool) -> None:
    if port_free(port, host):
        return
    purpose, flag = PARTS[part]
    why = (f"it was chosen at this server's first start and is recorded in {Path(data_dir) / PORTS_FILE}, so that "
           "the links written to it keep working" if recorded else "it was chosen for this start")
    raise HomePortTaken(
        f"port {port} ({purpose} of the local server of {data_dir}) on {host} is held by {holder(port)}; {why}. "
        f"Stop that program, or give this server another port: CLEARML_ASSETS_LOCAL_{part.upper()}_PORT=<port> "
        f"(0: any free port) or `clearml-assets local-server start {flag} <port>` (links already written with "
        f"port {port} then point at the old address)")


def holder(port: int) -> str:
    """Which process listens on ``port``, as far as this user may see (``pid 123 (nginx: ...)``)."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                command = " ".join(proc.cmdline())[:120] or proc.name()
                return f"pid {conn.pid} ({command})"
    except (psutil.Error, OSError):
        pass
    return "another program (its process is not visible to this user)"
