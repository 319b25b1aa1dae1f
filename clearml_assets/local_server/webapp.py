"""The real ClearML web app (a clearml-web build) on the local server's web port, served as clearml-server does.

clearml-server ships its web app behind nginx: the build's static files at ``/`` (any route of the single-page
app answered with ``index.html``), ``configuration.json`` telling the app where the API is, ``/api/`` proxied to
the API server with the prefix removed and ``/files/`` to the fileserver. This module is that nginx, in process:
``/api`` and ``/files`` are the local server's own API and fileserver applications called directly.

The session is clearml-server's: ``auth.login`` through ``/api`` sets the ``clearml_token_basic`` cookie
(HttpOnly, SameSite=Strict, the token of the key pair that signed in, with its rights), later ``/api`` calls
and file downloads authenticate with it, and ``login.logout``/``auth.logout`` revoke the token on the server
(it stops working everywhere, the API port included) and drop the cookie. The API port itself never reads the
cookie: only the web port's ``/api`` does, as only the web app sends it. The app signs in in the real server's
*fixed users* mode: the user name is the server's access key, the password its secret key (see
``services/login.py``), so nothing is handed to an anonymous visitor.

None of clearml-web is part of this project: the build is read from the folder the user points at
(``clearml-assets local-server --web-app DIR`` or ``CLEARML_ASSETS_WEB_APP``).
"""

from __future__ import annotations

import json
import mimetypes
import os
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath
from typing import Any, Awaitable, Callable

from starlette.responses import FileResponse, JSONResponse, Response

WEB_APP_ENV = "CLEARML_ASSETS_WEB_APP"
"""Environment variable naming a clearml-web build folder (what ``--web-app`` sets)."""
TOKEN_COOKIE = "clearml_token_basic"
"""clearml-server's session cookie (``apiserver.auth.session_auth_cookie_name``)."""
LOGIN_ENDPOINTS = frozenset({"auth.login"})
LOGOUT_ENDPOINTS = frozenset({"login.logout", "auth.logout"})
# asset types the build holds: a missing one is a 404, any other path is a route of the single-page app
_ASSET_SUFFIXES = frozenset({".js", ".mjs", ".css", ".map", ".json", ".png", ".jpg", ".jpeg", ".gif", ".svg",
                             ".ico", ".webp", ".woff", ".woff2", ".ttf", ".eot", ".txt", ".html", ".wasm"})

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class WebAppBuildError(ValueError):
    """The folder given as the web app is not a clearml-web build."""


def check_web_app_build(path: str | os.PathLike) -> Path:
    """The resolved build folder, or a clear error saying what is wrong with it and how to get one.

    Args:
        path: A folder holding a clearml-web production build (``index.html`` and its ``main-*.js``).

    Raises:
        WebAppBuildError: The folder is missing or is not such a build.
    """
    folder = Path(path).expanduser().resolve()
    how = ("build clearml-web (`ng build --configuration production`) or copy /usr/share/nginx/html out of "
           "clearml-server's webserver image, and point --web-app (or CLEARML_ASSETS_WEB_APP) at that folder")
    if not folder.is_dir():
        raise WebAppBuildError(f"web app folder {folder} does not exist; {how}")
    index = folder / "index.html"
    if not index.is_file() or "<sm-root" not in index.read_text(errors="replace"):
        raise WebAppBuildError(f"{folder} is not a ClearML web app build (no index.html with <sm-root>); {how}")
    return folder


def web_app_configuration(build_dir: Path, files_host: str) -> dict[str, Any]:
    """``configuration.json``: the build's own settings, with the API at ``/api`` and files links recognised.

    Args:
        build_dir: The build folder (its ``configuration.json``, if any, is the base).
        files_host: The fileserver URL the SDK writes into links; the app rewrites links under it to
            ``/files/...`` on the web port (its ``useFilesProxy``).
    """
    config: dict[str, Any] = {}
    own = build_dir / "configuration.json"
    if own.is_file():
        try:
            loaded = json.loads(own.read_text())
            config = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            config = {}
    return {**config, "apiBaseUrl": "/api", "fileBaseUrl": files_host.rstrip("/"), "useFilesProxy": True}


def build_web_app_server(build_dir: Path, api_app: ASGIApp, files_app: ASGIApp, files_host: str) -> ASGIApp:
    """The web port's application: the build, ``/api`` and ``/files``.

    Args:
        build_dir: A checked clearml-web build (:func:`check_web_app_build`).
        api_app: The local server's API application (its ``login.logout`` revokes the session's token).
        files_app: The local server's fileserver application.
        files_host: The fileserver URL stored in links (see :func:`web_app_configuration`).
    """
    static = _Static(build_dir, web_app_configuration(build_dir, files_host))
    api = _ApiProxy(api_app)
    files = _Prefixed(files_app, "/files")

    async def app(scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/api" or path.startswith("/api/"):
            await api(scope, receive, send)
        elif path.startswith("/files/"):
            await files(_with_cookie_authorization(scope), receive, send)
        else:
            await static(scope, receive, send)

    return app


class _Static:
    """The build's files; routes of the single-page app get ``index.html``."""

    def __init__(self, build_dir: Path, configuration: dict[str, Any]):
        self.root = build_dir
        self.configuration = configuration

    async def __call__(self, scope: dict, receive, send) -> None:
        response = self.response(scope["method"], scope["path"])
        await response(scope, receive, send)

    def response(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response("method not allowed", status_code=405, headers={"Allow": "GET, HEAD"})
        if path == "/healthz":  # what `clearml-assets local-server status` asks the web port
            return Response("ok", media_type="text/plain")
        if path == "/configuration.json":
            return JSONResponse(self.configuration, headers={"Cache-Control": "no-store"})
        target = self.file(path)
        if target is not None:
            media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            cache = "no-cache" if target.suffix == ".html" else "public, max-age=3600"
            return FileResponse(target, media_type=media, headers=_headers(cache))
        if PurePosixPath(path).suffix.lower() in _ASSET_SUFFIXES:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(self.app_index(path), media_type="text/html", headers=_headers("no-cache"))

    def app_index(self, url_path: str) -> Path:
        """The ``index.html`` of the single-page app a route belongs to: the nearest folder above it that has one
        (a build's ``widgets/`` app, the reports' embedded charts, has its own), else the build's."""
        parts = [p for p in PurePosixPath("/" + url_path.lstrip("/")).parts[1:] if p not in ("", ".", "..")]
        for depth in range(len(parts) - 1, 0, -1):
            candidate = self.file("/".join(parts[:depth]) + "/index.html")
            if candidate is not None:
                return candidate
        return self.root / "index.html"

    def file(self, url_path: str) -> Path | None:
        """The build's file at ``url_path``, never one outside the build (``..``, links out)."""
        parts = [p for p in PurePosixPath("/" + url_path.lstrip("/")).parts[1:] if p not in ("", ".")]
        if not parts or any(p == ".." or "\x00" in p for p in parts):
            return None
        target = self.root.joinpath(*parts)
        if target.is_dir():
            target = target / "index.html"
        try:
            resolved = target.resolve()
        except OSError:
            return None
        return resolved if resolved.is_file() and resolved.is_relative_to(self.root) else None


def _headers(cache: str) -> dict[str, str]:
    return {"Cache-Control": cache, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN"}


class _Prefixed:
    """An ASGI app called with a path prefix removed (nginx ``proxy_pass`` to a location with a trailing /)."""

    def __init__(self, app: ASGIApp, prefix: str):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: dict, receive, send) -> None:
        await self.app(self.strip(scope), receive, send)

    def strip(self, scope: dict) -> dict:
        path = scope["path"][len(self.prefix):] or "/"
        raw = scope.get("raw_path") or scope["path"].encode()
        return {**scope, "path": path, "raw_path": raw[len(self.prefix.encode()):] or b"/"}


class _ApiProxy(_Prefixed):
    """``/api`` to the API: the session cookie becomes the bearer token; sign-in sets it, sign-out drops it (the
    API's ``login.logout`` revokes the token itself)."""

    def __init__(self, app: ASGIApp):
        super().__init__(app, "/api")

    async def __call__(self, scope: dict, receive, send) -> None:
        inner = _with_cookie_authorization(self.strip(scope))
        name = inner["path"].rstrip("/").rsplit("/", 1)[-1]
        if name in LOGIN_ENDPOINTS:
            send = _SetCookieOnLogin(send)
        elif name in LOGOUT_ENDPOINTS:
            send = _DropCookie(send)
        await self.app(inner, receive, send)


def _cookie(scope: dict) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            morsel = jar.get(TOKEN_COOKIE)
            if morsel is not None and morsel.value:
                return morsel.value
    return None


def _with_cookie_authorization(scope: dict) -> dict:
    """The request with ``Authorization: Bearer <cookie>`` when it has the session cookie and no header (as
    clearml-server: the cookie is the starting point, an explicit header wins)."""
    headers = scope.get("headers", [])
    if any(key == b"authorization" for key, _ in headers):
        return scope
    token = _cookie(scope)
    if not token:
        return scope
    return {**scope, "headers": [*headers, (b"authorization", b"Bearer " + token.encode("latin-1"))]}


def session_cookie(token: str | None) -> str:
    """The ``Set-Cookie`` value of a session (None: the one that removes it)."""
    attributes = "Path=/; HttpOnly; SameSite=Strict"
    if token is None:
        return f"{TOKEN_COOKIE}=; Max-Age=0; {attributes}"
    return f"{TOKEN_COOKIE}={token}; {attributes}"


class _BufferedResponse:
    """Collects an API response so its token can be read before the headers go out (login answers are small)."""

    def __init__(self, send):
        self.send = send
        self.start: dict | None = None
        self.body = bytearray()

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                await self.flush()
            return
        await self.send(message)

    async def flush(self) -> None:
        start = dict(self.start or {"type": "http.response.start", "status": 500, "headers": []})
        cookie = self.cookie(start.get("status", 500))
        if cookie is not None:
            start["headers"] = [*start.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
        await self.send(start)
        await self.send({"type": "http.response.body", "body": bytes(self.body)})

    def cookie(self, status: int) -> str | None:
        raise NotImplementedError


class _SetCookieOnLogin(_BufferedResponse):
    def cookie(self, status: int) -> str | None:
        if status != 200:
            return None
        try:
            token = json.loads(self.body)["data"]["token"]
        except (ValueError, KeyError, TypeError):
            return None
        return session_cookie(token) if isinstance(token, str) and token else None


class _DropCookie(_BufferedResponse):
    def cookie(self, status: int) -> str | None:
        return session_cookie(None)
