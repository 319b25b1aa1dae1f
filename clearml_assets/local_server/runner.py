"""Start and stop the local server: in-process (a background thread) or as a subprocess."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from .app import build_api_app
from .auth import (Authenticator, Credential, ViewSessions, load_or_create_credentials,
                   load_or_create_signing_key)
from .bll.auth import is_revoked
from .core.versions import ServerRelease, server_release
from .fileserver import build_files_app
from .self_description import with_self_description
from .server_info import (DEFAULT_API_PORT, DEFAULT_FILES_PORT, DEFAULT_HOST, DEFAULT_WEB_PORT,  # noqa: F401
                          DataDirInUse, LocalServerInfo, PortInUse, check_ports_free, free_port, lock_is_held,
                          read_server_file, remove_server_file, wait_until_ready, write_server_file)
from .store import Store
from .webapp import WEB_APP_ENV, build_web_app_server, check_web_app_build


@dataclass
class LocalServer:
    """The local ClearML-compatible server.

    Args:
        data_dir: Where the database and files persist.
        host: Interface to bind (loopback unless told otherwise).
        api_port: API port (0 picks a free one).
        files_port: Fileserver port (0 picks a free one).
        web_port: Port of the web app, or of the read-only web view without one (0 picks a free one; None:
            neither).
        credentials: Key pairs; by default the data directory's own (generated once).
        files_auth: Whether the fileserver requires a valid API token.
        server_version: The clearml-server release to present itself as (``2.3.0``, the default, or ``1.9.2``;
            default: ``CLEARML_ASSETS_SERVER_VERSION``).
        web_app: A ClearML web app build (clearml-web) to serve on the web port as clearml-server does (default:
            ``CLEARML_ASSETS_WEB_APP``; neither: the read-only web view).

    Raises:
        ValueError: ``server_version`` is not a release the server can present itself as.
        WebAppBuildError: ``web_app`` is not a web app build.
        DataDirInUse: (on start) another local server already serves ``data_dir``.
    """

    data_dir: Path
    host: str = DEFAULT_HOST
    api_port: int = DEFAULT_API_PORT
    files_port: int = DEFAULT_FILES_PORT
    web_port: int | None = 0
    credentials: list[Credential] | None = field(default=None, repr=False)  # keys never in a repr/traceback
    files_auth: bool = True
    server_version: str | None = None
    web_app: Path | None = None
    release: ServerRelease = field(init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _servers: list[uvicorn.Server] = field(default_factory=list, init=False, repr=False)
    store: Store | None = field(default=None, init=False, repr=False)
    _lock_fh: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        # a new data folder is the owner's only: it holds every task, log and file of the server
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.credentials is None:
            self.credentials = load_or_create_credentials(self.data_dir)
        if self.api_port == 0:
            self.api_port = free_port(self.host)
        if self.files_port == 0:
            self.files_port = free_port(self.host)
        if self.web_port == 0:
            self.web_port = free_port(self.host)
        self.release = server_release(self.server_version)
        self.server_version = self.release.version
        web_app = self.web_app or os.environ.get(WEB_APP_ENV)
        self.web_app = check_web_app_build(web_app) if web_app else None

    @property
    def info(self) -> LocalServerInfo:
        """Hosts and the first key pair."""
        cred = self.credentials[0]
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return LocalServerInfo(
            api_host=f"http://{host}:{self.api_port}",
            files_host=f"http://{host}:{self.files_port}",
            web_host=f"http://{host}:{self.web_port}" if self.web_port else "",
            access_key=cred.access_key,
            secret_key=cred.secret_key,
            data_dir=self.data_dir,
        )

    def _claim_data_dir(self) -> None:
        """Hold ``serve.lock`` in the data folder while serving: one server per data folder."""
        fh = open(self.data_dir / "serve.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise DataDirInUse(self.data_dir) from None
        self._lock_fh = fh

    def _release_data_dir(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()  # closing the file releases the lock
            self._lock_fh = None

    def _build(self) -> list[uvicorn.Server]:
        self._claim_data_dir()
        store = self.store = Store(self.data_dir)
        authenticator = Authenticator(self.credentials, load_or_create_signing_key(self.data_dir), self.release,
                                      is_revoked=lambda token_id: is_revoked(store, token_id))
        api = build_api_app(self.store, authenticator, release=self.release)
        sessions = ViewSessions()
        files = build_files_app(self.data_dir / "files", authenticator if self.files_auth else None,
                                primary_company=self.credentials[0].company, sessions=sessions)
        common = dict(host=self.host, log_level="warning", access_log=False, lifespan="off",
                      timeout_keep_alive=30)
        servers = [
            uvicorn.Server(uvicorn.Config(with_self_description(api, authenticator, self._description),
                                          port=self.api_port, **common)),
            uvicorn.Server(uvicorn.Config(files, port=self.files_port, **common)),
        ]
        if self.web_port:
            web = self._web(api, files, authenticator, sessions)
            servers.append(uvicorn.Server(uvicorn.Config(web, port=self.web_port, **common)))
        return servers

    def _description(self) -> dict[str, Any]:
        """Hosts and ports, as ``GET /clearml_assets.local_server`` answers a holder of one of the key pairs."""
        info = self.info
        return {"api_port": self.api_port, "files_port": self.files_port, "web_port": self.web_port,
                "api_host": info.api_host, "files_host": info.files_host, "web_host": info.web_host}

    def _web(self, api, files, authenticator, sessions):
        """The web port's application: the real web app when there is a build, else the read-only web view."""
        if self.web_app is not None:
            return build_web_app_server(self.web_app, api, files, self.info.files_host)
        from .web import build_web_app

        return build_web_app(self.store, authenticator, sessions)

    def serve_forever(self, record: bool = False) -> None:
        """Run in the foreground until SIGINT/SIGTERM.

        Args:
            record: Write ``server.json`` (where it listens, its pid) once the data folder is claimed, and
                remove it on exit: how ``clearml-assets local-server stop/status`` and the ``local`` account
                find a running server.

        Raises:
            DataDirInUse: Another local server already serves the data folder.
            PortInUse: One of its ports is taken (checked before anything starts).
        """
        check_ports_free(self.host, {"API": self.api_port, "files": self.files_port, "web view": self.web_port})
        self._servers = self._build()
        if record:
            write_server_file(self.data_dir, self.info, os.getpid())
        try:
            asyncio.run(self._serve())
        finally:
            self.store.close()
            if record:
                remove_server_file(self.data_dir, os.getpid())
            self._release_data_dir()

    async def _serve(self) -> None:
        await asyncio.gather(*(s.serve() for s in self._servers))

    def start(self, timeout: float = 20.0) -> "LocalServer":
        """Start in a background thread and wait until it answers."""
        self._servers = self._build()
        for s in self._servers:
            s.install_signal_handlers = lambda: None  # only the main thread may own signals
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()),
                                        name="clearml-local-server", daemon=True)
        self._thread.start()
        wait_until_ready(self.info.api_host, timeout)
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start`."""
        for s in self._servers:
            s.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        if self.store is not None:
            self.store.close()
        self._release_data_dir()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class LocalServerProcess:
    """A local server running as a child process (``python -m clearml_assets.local_server``)."""

    process: subprocess.Popen
    info: LocalServerInfo

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the child and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LocalServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_local_server_process(
    data_dir: Path,
    host: str = DEFAULT_HOST,
    api_port: int = 0,
    files_port: int = 0,
    access_key: str | None = None,
    secret_key: str | None = None,
    timeout: float = 30.0,
    log_file: Path | None = None,
    detach: bool = False,
    web_port: int | None = 0,
) -> LocalServerProcess:
    """Start the server in a subprocess and wait until it answers.

    Args:
        data_dir: Where the database and files persist.
        host: Interface to bind.
        api_port: API port (0 picks a free one).
        files_port: Fileserver port (0 picks a free one).
        access_key: Key pair to serve (with ``secret_key``); default: the data directory's.
        secret_key: Secret of ``access_key``.
        timeout: Seconds to wait for the server to answer.
        log_file: Where the child's output goes (default: discarded).
        detach: Start it in its own session so it outlives the caller.
        web_port: Port of the web view (0 picks a free one; None: no web view).

    Raises:
        DataDirInUse: Another local server already serves ``data_dir``.
        RuntimeError: The server exited before answering (its log says why).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    api_port = api_port or free_port(host)
    files_port = files_port or free_port(host)
    if web_port == 0:
        web_port = free_port(host)
    cmd = _server_command(data_dir, host, api_port, files_port, web_port)
    proc = _spawn_server(cmd, _server_env(access_key, secret_key), log_file, detach)
    api_host = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{api_port}"
    try:
        _wait_for_child(proc, data_dir, api_host, timeout, log_file)
    except BaseException:
        proc.kill()
        raise
    if access_key and secret_key:
        cred = Credential(access_key, secret_key)
    else:
        cred = load_or_create_credentials(data_dir)[0]
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    info = LocalServerInfo(api_host, f"http://{shown}:{files_port}",
                           f"http://{shown}:{web_port}" if web_port else "",
                           cred.access_key, cred.secret_key, data_dir)
    return LocalServerProcess(proc, info)


def _server_command(data_dir: Path, host: str, api_port: int, files_port: int, web_port: int | None
                    ) -> list[str]:
    """The command line of a server child (no secrets: ``ps`` shows it).

    Args:
        data_dir: The resolved data folder.
        host: Interface to bind.
        api_port: API port.
        files_port: Fileserver port.
        web_port: Web view port (None or 0: no web view).

    Returns:
        The argument vector for ``subprocess.Popen``.
    """
    return [sys.executable, "-m", "clearml_assets.local_server", "--data-dir", str(data_dir),
            "--host", host, "--api-port", str(api_port), "--files-port", str(files_port),
            "--web-port", str(web_port or "none"), "--quiet"]


def _server_env(access_key: str | None, secret_key: str | None) -> dict[str, str]:
    """The child's environment: this process's, plus the key pair when both halves are given.

    Args:
        access_key: Key pair to serve, or None for the data folder's.
        secret_key: Secret of ``access_key``.

    Returns:
        The environment for the child.
    """
    env = dict(os.environ)
    if access_key and secret_key:
        # passed through the environment, never on the command line (ps would show it)
        env["CLEARML_ASSETS_SERVER_ACCESS_KEY"] = access_key
        env["CLEARML_ASSETS_SERVER_SECRET_KEY"] = secret_key
    return env


def _spawn_server(cmd: list[str], env: dict[str, str], log_file: Path | None, detach: bool
                  ) -> subprocess.Popen:
    """Start the child with its output appended to ``log_file`` (or discarded).

    Args:
        cmd: The child's command line.
        env: The child's environment.
        log_file: Where stdout and stderr go; None discards them.
        detach: Start the child in its own session.

    Returns:
        The running child.
    """
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=detach)
    if log_file:
        out.close()
    return proc


def _wait_for_child(proc: subprocess.Popen, data_dir: Path, api_host: str, timeout: float,
                    log_file: Path | None) -> None:
    """Wait until the child's API answers, failing fast if the child exits.

    Args:
        proc: The server child.
        data_dir: The data folder it serves.
        api_host: The API's URL.
        timeout: Seconds to wait.
        log_file: The child's log (named in the error).

    Raises:
        DataDirInUse: The child exited because another server holds ``data_dir``.
        RuntimeError: The child exited for another reason.
        TimeoutError: The API did not answer within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            if read_server_file(data_dir) and lock_is_held(data_dir):
                raise DataDirInUse(data_dir)
            raise RuntimeError(f"local ClearML server exited with code {proc.returncode}"
                               + (f"; see {log_file}" if log_file else ""))
        try:
            wait_until_ready(api_host, 0.5)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


