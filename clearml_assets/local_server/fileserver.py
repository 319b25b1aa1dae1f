"""The fileserver: multipart POST uploads to ``/`` and GET downloads with Content-Length.

Like ClearML's fileserver, an upload's form field name is the target path
(``/<project>/<task>.<id>/artifacts/<name>/<file>``). Paths are confined to the
files folder: a name that would leave it is refused with 400.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .auth import VIEW_SESSION_COOKIE, Authenticator, ViewSessions
from .core import ApiError


class _FileResponse(FileResponse):
    # 1 MiB reads instead of Starlette's 64 KiB: 16x fewer thread-pool hops per megabyte served
    chunk_size = 1024 * 1024


_INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
           ".webp": "image/webp"}


MAX_NAME_BYTES = 255  # one path component (NAME_MAX of Linux file systems)
MAX_PATH_BYTES = 3072  # a whole path under the files folder (PATH_MAX is 4096 with the folder itself)


def safe_file_path(root: Path, url_path: str) -> Path:
    """Map a URL path to a file under ``root``, refusing anything that leaves it or that no file system holds
    (a component over 255 bytes, a path over 3,072): a ValueError naming the limit, never an ``OSError``."""
    parts = [p for p in PurePosixPath("/" + url_path.lstrip("/")).parts[1:] if p not in ("", ".")]
    if not parts or any(p == ".." or "\x00" in p for p in parts):
        raise ValueError(f"invalid file path {url_path[:200]!r}")
    longest = max(len(p.encode("utf-8", "surrogatepass")) for p in parts)
    if longest > MAX_NAME_BYTES:
        raise ValueError(f"file path {url_path[:120]!r}... has a name of {longest} bytes (at most {MAX_NAME_BYTES})")
    size = len("/".join(parts).encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise ValueError(f"file path {url_path[:120]!r}... is {size} bytes long (at most {MAX_PATH_BYTES})")
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"file path {url_path[:200]!r} leaves the files folder")
    return target


COMPANIES_DIR = ".companies"
TOKEN_COOKIE = "clearml_token_basic"  # the ClearML web app's token cookie (ClearML's name for it)


def build_files_app(files_dir: Path, authenticator: Authenticator | None, primary_company: str | None = None,
                    sessions: ViewSessions | None = None) -> Starlette:
    """The fileserver application storing files under ``files_dir``.

    Args:
        files_dir: Where uploaded files live.
        authenticator: When given, every request needs a valid token of the API server.
        primary_company: The company whose files live at the top of ``files_dir`` (the server's first
            key pair); every other company's files live apart under ``.companies/<company>``, so one key
            pair's token can neither read nor overwrite another's files.
        sessions: The web view's sessions: their cookie lets a signed-in browser download (never upload or
            delete).
    """
    files_dir = Path(files_dir)
    files_dir.mkdir(parents=True, exist_ok=True)
    files = _Files(files_dir, authenticator, primary_company, sessions)
    return Starlette(routes=[
        Route("/", files.upload, methods=["POST"]),
        Route("/{path:path}", files.download, methods=["GET", "HEAD"]),
        Route("/{path:path}", files.delete, methods=["DELETE"]),
    ])


@dataclass
class _Files:
    """The fileserver's endpoints over one files folder.

    Attributes:
        files_dir: Where uploaded files live.
        authenticator: When given, every request needs a valid token of the API server.
        primary_company: The company whose files live at the top of ``files_dir``.
        sessions: The web view's sessions (downloads only).
    """

    files_dir: Path
    authenticator: Authenticator | None
    primary_company: str | None
    sessions: ViewSessions | None = None

    def company_root(self, request: Request) -> Path:
        """The folder of the requesting identity's company.

        Args:
            request: The request (its token, in the header or the web view's cookie).

        Returns:
            ``files_dir`` for the primary company (or without authentication), else its own folder.

        Raises:
            ApiError: The request has no valid token.
        """
        if self.authenticator is None:
            return self.files_dir
        company = str(self._identity(request).get("company") or "")
        if self.primary_company is None or company == self.primary_company:
            return self.files_dir
        return self.files_dir / COMPANIES_DIR / hashlib.sha256(company.encode()).hexdigest()[:32]

    def _identity(self, request: Request) -> dict:
        """The identity of the request's API token (header, or the ClearML web app's cookie) or, for downloads,
        of the web view's session cookie.

        Raises:
            ApiError: None of them is valid.
        """
        authorization = request.headers.get("authorization")
        download = request.method in ("GET", "HEAD")
        if not authorization and download and self.sessions is not None:
            identity = self.sessions.identity(request.cookies.get(VIEW_SESSION_COOKIE))
            if identity is not None:
                return identity
        cookie = request.cookies.get(TOKEN_COOKIE)
        if not authorization and cookie and download:
            # the ClearML web app's session (as ClearML's fileserver: fileserver.auth.cookie_names); downloads
            # only, so a page elsewhere cannot upload or delete with the user's cookie
            authorization = f"Bearer {cookie}"
        return self.authenticator.identity(authorization)

    def resolve(self, request: Request, url_path: str) -> Path:
        """The file a request may touch; ApiError 401 without a valid token, ValueError for a bad path."""
        root = self.company_root(request)
        if PurePosixPath("/" + url_path.lstrip("/")).parts[1:2] == (COMPANIES_DIR,):
            raise ValueError(f"invalid file path {url_path!r}")
        return safe_file_path(root, url_path)

    async def upload(self, request: Request) -> Response:
        """``POST /``: store each file of the multipart form at its field name's path."""
        try:
            self.company_root(request)
        except ApiError as exc:
            return _refused(exc)
        try:
            form = await request.form(max_files=10_000, max_fields=10_000, max_part_size=64 * 1024 * 1024)
        except (MultiPartException, HTTPException) as exc:
            detail = getattr(exc, "message", None) or getattr(exc, "detail", None) or exc
            return _refused(ValueError(f"invalid multipart upload ({detail}); each file's field name is its path "
                                       f"(at most {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} a name)"))
        stored = []
        try:
            for field_name, value in form.multi_items():
                if not hasattr(value, "read"):
                    continue
                try:
                    target = self.resolve(request, field_name or value.filename or "")
                except ValueError as exc:
                    return _refused(exc)
                await _store_upload(value, target)
                stored.append(field_name)
        finally:
            await form.close()
        return JSONResponse({"uploaded": stored})

    async def download(self, request: Request) -> Response:
        """``GET``/``HEAD`` of a file: images with their image type, anything else as an octet stream."""
        try:
            target = self.resolve(request, request.url.path)
        except (ApiError, ValueError) as exc:
            return _refused(exc)
        if not target.is_file():
            return JSONResponse({"error": f"file not found: {request.url.path}"}, status_code=404)
        # images open inline in the web view; anything else downloads under its own name
        media = "application/octet-stream"
        if target.suffix.lower() in _INLINE:
            media = _INLINE[target.suffix.lower()]
        return _FileResponse(target, media_type=media, headers={"X-Content-Type-Options": "nosniff"})

    async def delete(self, request: Request) -> Response:
        """``DELETE`` of a file or a whole folder."""
        try:
            target = self.resolve(request, request.url.path)
        except (ApiError, ValueError) as exc:
            return _refused(exc)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"deleted": request.url.path})


def _refused(exc: Exception) -> Response:
    """401 for a missing or invalid token (``ApiError``), 400 for a bad path."""
    if isinstance(exc, ApiError):
        return JSONResponse({"error": exc.msg}, status_code=401)
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _store_upload(upload: Any, target: Path) -> None:
    """Write an uploaded file to ``target`` through a temporary file in the same folder.

    Args:
        upload: The form's file (Starlette ``UploadFile``).
        target: Where it goes.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    with os.fdopen(fd, "wb") as out:
        await _copy_upload(upload, out)
    os.replace(tmp, target)  # a reader never sees half a file


async def _copy_upload(upload, out) -> None:
    while chunk := await upload.read(1024 * 1024):
        out.write(chunk)
