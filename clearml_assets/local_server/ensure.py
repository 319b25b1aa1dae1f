"""Find the local server of a ``CLEARML_ASSETS_HOME`` (or a shared one by URL), or start it on demand.

One data folder has at most one server (it holds ``<data_dir>/serve.lock`` while serving). A running
server records where it listens in ``<data_dir>/server.json`` (no secrets), which is how later runs, other
processes and ``clearml-assets local-server stop|status`` find it. ``CLEARML_ASSETS_LOCAL_SERVER=<API URL>``
points the ``local`` account at a shared server instead (e.g. one started with ``clearml-assets local-server
start`` on another host); its key pair then comes from ``CLEARML_ASSETS_SERVER_ACCESS_KEY`` /
``CLEARML_ASSETS_SERVER_SECRET_KEY`` or from the home's ``server/credentials.json``.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
import secrets
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests

from ..errors import ClearMLConnectionError
from .auth import Credential, identity_proof, load_or_create_credentials
from .home_ports import HomePortTaken, choose_ports, record_ports
from .runner import start_local_server_process
from .self_description import PROOF_PATH, SELF_DESCRIPTION_PATH
from .server_info import (DEFAULT_API_PORT, DEFAULT_FILES_PORT, DEFAULT_HOST, DEFAULT_WEB_PORT, DataDirInUse,
                          LocalServerInfo, read_server_file, remove_server_file, sdk_config_file)

SHARED_SERVER_ENV = "CLEARML_ASSETS_LOCAL_SERVER"
SERVER_KEY_ENV = ("CLEARML_ASSETS_SERVER_ACCESS_KEY", "CLEARML_ASSETS_SERVER_SECRET_KEY")


class LocalServerError(ClearMLConnectionError):
    """The local server cannot be reached or started; the message says why and what to do."""


def _proves_identity(info: LocalServerInfo) -> bool:
    """Whether the server at ``info.api_host`` proves it holds the key pair (an HMAC of a fresh nonce under the
    secret, :data:`PROOF_PATH`): the secret is never sent, so a program that took the port of a dead server
    learns nothing."""
    nonce = secrets.token_hex(16)
    try:
        with requests.get(f"{info.api_host}{PROOF_PATH}", params={"key": info.access_key, "nonce": nonce},
                          timeout=2, stream=True, allow_redirects=False) as resp:
            body = resp.raw.read(4096, decode_content=True) if resp.status_code == 200 else b""
        proof = json.loads(body or b"{}").get("proof")
    except (requests.RequestException, ValueError, AttributeError, OSError):
        return False
    return isinstance(proof, str) and hmac.compare_digest(proof, identity_proof(info.secret_key, nonce))


def is_our_server(info: LocalServerInfo, pid: int) -> bool:
    """Whether the recorded server process still runs and the server at its address is it (checked before any
    credential goes there: a stale ``server.json`` must not hand the key pair to whoever took the port)."""
    return server_is_alive(pid) and _proves_identity(info)


def _answers(info: LocalServerInfo) -> bool:
    """Whether a server at ``info.api_host`` accepts this data dir's keys (call only once it proved its
    identity: this sends the key pair)."""
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


def recorded_server(data_dir: Path) -> tuple[LocalServerInfo, int] | None:
    """The server recorded in ``data_dir/server.json`` and its pid (whether or not it still runs)."""
    data_dir = Path(data_dir).expanduser().resolve()
    where = read_server_file(data_dir)
    key, secret = (os.environ.get(name, "") for name in SERVER_KEY_ENV)
    if not where or not ((key and secret) or (data_dir / "credentials.json").exists()):
        return None
    if not (key and secret):  # a server started with the pair in the environment is checked with that pair
        cred = load_or_create_credentials(data_dir)[0]
        key, secret = cred.access_key, cred.secret_key
    info = LocalServerInfo(where["api_host"], where["files_host"], where.get("web_host", ""), key, secret, data_dir)
    return info, int(where.get("pid") or 0)


def running_server(data_dir: Path) -> LocalServerInfo | None:
    """The server serving ``data_dir`` if it runs and accepts the folder's keys, else None."""
    found = recorded_server(data_dir)
    if found is None or not is_our_server(*found):
        return None
    return found[0] if _answers(found[0]) else None


def running_local_server(home: Path) -> LocalServerInfo | None:
    """The local server of ``home`` (data in ``<home>/server``) if one is running and ours, else None."""
    return running_server(Path(home).expanduser().resolve() / "server")


def start_server(data_dir: Path, host: str = DEFAULT_HOST, api_port: int = DEFAULT_API_PORT,
                 files_port: int = DEFAULT_FILES_PORT, web_port: int | None = DEFAULT_WEB_PORT,
                 timeout: float = 30.0, explicit: Mapping[str, int | None] | None = None
                 ) -> tuple[LocalServerInfo, bool]:
    """The running server of ``data_dir``, or a new one started detached (it outlives the caller).

    Its ports are chosen once (:mod:`.home_ports`): at the first start the preferred ones, a free one for each that
    is taken; at every later start the recorded ones, so links to the server keep working. The server's log goes
    to ``<data_dir>/server.log``; its SDK settings to ``<data_dir>/clearml.conf`` (:func:`sdk_config_file`).

    Args:
        data_dir: The server's data folder.
        host: The interface it binds.
        api_port: Preferred API port at the first start.
        files_port: Preferred fileserver port at the first start.
        web_port: Preferred web view port at the first start (None: no web view).
        timeout: Seconds to wait for a new server to answer.
        explicit: Ports chosen for this start (``api``, ``files``, ``web``; 0: any free one): they replace the
            recorded ones.

    Returns:
        The server's info and whether it was started now.

    Raises:
        LocalServerError: A recorded or chosen port is held by another program (named), or it could not start
            (the message has the log's last lines).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(data_dir.parent / f".{data_dir.name}.start.lock"):
        info = running_server(data_dir)
        if info is not None:
            sdk_config_file(info)
            return info, False
        try:
            ports = choose_ports(data_dir, host, {"api": api_port, "files": files_port, "web": web_port},
                                 dict(explicit or {}))
        except HomePortTaken as exc:
            raise LocalServerError(str(exc)) from None
        log_file = data_dir / "server.log"
        try:
            proc = start_local_server_process(data_dir, host=host, api_port=ports["api"], files_port=ports["files"],
                                              web_port=ports["web"], timeout=timeout, log_file=log_file,
                                              detach=True)
        except DataDirInUse as exc:
            raise LocalServerError(str(exc)) from None
        except (RuntimeError, TimeoutError) as exc:
            tail = log_file.read_text(errors="replace").splitlines()[-15:] if log_file.exists() else []
            raise LocalServerError(f"the local ClearML server for {data_dir} did not start: {exc}"
                                   + ("\n" + "\n".join(tail) if tail else "")) from None
        record_ports(data_dir, ports)
        sdk_config_file(proc.info)
        return proc.info, True


def ensure_local_server(home: Path, timeout: float = 30.0, api_port: int = DEFAULT_API_PORT,
                        files_port: int = DEFAULT_FILES_PORT, web_port: int | None = DEFAULT_WEB_PORT
                        ) -> LocalServerInfo:
    """The local server of the ``local`` account: a shared one by URL, or the home's, started if needed.

    With ``CLEARML_ASSETS_LOCAL_SERVER`` set, that server is used and none is started. Otherwise the server
    keeps its data in ``<home>/server`` and is reused by later runs and other processes. Its ports are chosen at
    its first start (``api_port``/``files_port``/``web_port`` when free, else free ones) and kept for every later
    start (:func:`start_server`); ``CLEARML_ASSETS_LOCAL_API_PORT``, ``..._FILES_PORT``, ``..._WEB_PORT`` (0: any
    free port; ``none``: no web view) choose them instead.

    Args:
        home: The ``CLEARML_ASSETS_HOME`` folder.
        timeout: Seconds to wait for a new server to answer.
        api_port: Preferred API port at the first start.
        files_port: Preferred fileserver port at the first start.
        web_port: Preferred web view port at the first start (None: no web view).

    Raises:
        LocalServerError: The shared server does not answer, a port it needs is held by another program, or a new
            one could not start.
    """
    home = Path(home).expanduser().resolve()
    shared = os.environ.get(SHARED_SERVER_ENV, "").strip()
    if shared:
        return shared_server(shared, home)
    return start_server(home / "server", api_port=api_port, files_port=files_port, web_port=web_port,
                        timeout=timeout, explicit=ports_from_env())[0]


def ports_from_env() -> dict[str, int | None]:
    """The ports ``CLEARML_ASSETS_LOCAL_<PART>_PORT`` choose (a number, 0 for any free port, ``none`` for no web
    view), by part (``api``, ``files``, ``web``); parts without the variable are left out."""
    out: dict[str, int | None] = {}
    for part in ("api", "files", "web"):
        name = f"CLEARML_ASSETS_LOCAL_{part.upper()}_PORT"
        value = os.environ.get(name, "").strip().lower()
        if not value:
            continue
        if value in ("none", "off") and part == "web":
            out[part] = None
            continue
        try:
            out[part] = int(value)
        except ValueError:
            raise LocalServerError(f"{name}={value!r} is not a port number") from None
    return out


def shared_server(url: str, home: Path) -> LocalServerInfo:
    """The shared local server whose API answers at ``url``, with its files and web hosts.

    Raises:
        LocalServerError: No key pair for it, it does not answer, or it refuses the key pair.
    """
    key, secret = (os.environ.get(name, "") for name in SERVER_KEY_ENV)
    data_dir = Path(home) / "server"
    if not (key and secret):
        if not (data_dir / "credentials.json").exists():
            raise LocalServerError(
                f"{SHARED_SERVER_ENV}={url} needs the shared server's key pair: set {SERVER_KEY_ENV[0]} and "
                f"{SERVER_KEY_ENV[1]} (the pair the server was started with), or use the same "
                f"CLEARML_ASSETS_HOME as the server")
        cred: Credential = load_or_create_credentials(data_dir)[0]
        key, secret = cred.access_key, cred.secret_key
    api = url.rstrip("/")
    try:
        resp = requests.get(f"{api}{SELF_DESCRIPTION_PATH}", auth=(key, secret), timeout=5)
    except requests.RequestException as exc:
        raise LocalServerError(f"the shared local server {SHARED_SERVER_ENV}={url} does not answer "
                               f"({type(exc).__name__}); start it with `clearml-assets local-server start` "
                               "or check the URL") from None
    if resp.status_code == 401:
        raise LocalServerError(f"the shared local server at {url} refuses the key pair; set "
                               f"{SERVER_KEY_ENV[0]}/{SERVER_KEY_ENV[1]} to the pair it serves")
    if resp.status_code != 200:
        raise LocalServerError(f"{url} is not a clearml-assets local server (HTTP {resp.status_code} on "
                               f"{SELF_DESCRIPTION_PATH})")
    ports = resp.json()
    # the client reaches the files and web ports on the host it reached the API at
    parts = urlsplit(api)
    host = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"

    def at(port: int | None) -> str:
        return urlunsplit((parts.scheme, f"{host}:{port}", "", "", "")) if port else ""

    return LocalServerInfo(api, at(ports["files_port"]), at(ports.get("web_port")), key, secret,
                           data_dir.resolve())


def stop_server(data_dir: Path, timeout: float = 20.0) -> int | None:
    """Stop the server recorded for ``data_dir`` (SIGTERM, then wait); returns its pid, None if none ran.

    Only a recorded process that still runs and proves it holds the folder's key pair (before the pair is sent,
    :func:`is_our_server`) is signalled, so a stale record whose pid or port now belongs to another program is
    left alone and learns nothing.

    Raises:
        LocalServerError: It did not exit within ``timeout``.
    """
    found = recorded_server(data_dir)
    if found is None:
        return None
    info, pid = found
    if not pid or not is_our_server(info, pid) or not _answers(info):
        if not server_is_alive(pid):
            (Path(data_dir) / "server.json").unlink(missing_ok=True)  # stale record
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            raise LocalServerError(f"the local server (pid {pid}) did not stop within {timeout:.0f}s")
        time.sleep(0.1)
    # uvicorn re-raises SIGTERM after its shutdown, so the server may not have removed its record itself
    remove_server_file(Path(data_dir).expanduser().resolve(), pid)
    return pid


def server_is_alive(pid: int) -> bool:
    """Whether the process ``pid`` still runs (a recorded server that died leaves a stale record)."""
    return bool(pid) and _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours has exited
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def health(info: LocalServerInfo) -> dict[str, bool]:
    """Which parts of a server answer: the API (once it proved its identity, with the key pair), the
    fileserver, the web view."""
    def ok(url: str, **kwargs) -> bool:
        try:
            return requests.get(url, timeout=3, **kwargs).status_code < 500
        except requests.RequestException:
            return False

    result = {"api": _proves_identity(info) and _answers(info), "files": ok(f"{info.files_host}/")}
    if info.web_host:
        result["web"] = ok(f"{info.web_host}/healthz")
    return result
