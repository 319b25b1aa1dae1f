"""``client.files``: the account's fileserver (downloads, uploads) and which URLs count as its own.

A ClearML token goes only to the account's files host: a URL under another host, with credentials of its
own, or with a ``..`` (even percent-encoded) is refused before any request. A download is streamed to a
temporary file (renamed when whole), bounded in bytes by its ``Content-Length`` (else ``max_download_bytes``)
and in time by the deadline plus what its size needs at ``min_download_bytes_per_second``, so a server
dripping bytes cannot hold it open.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

import requests

from ..errors import ClearMLConfigError, ClearMLRequestError
from . import failures
from .failures import RETRY_STATUSES
from .session import ClearMLSession
from .transport import Deadline, TooLarge, bounded, declared_length, iter_body
from .urls import files_host_aliases, path_under, redact_url_credentials

#: The largest file downloaded when the fileserver declares no ``Content-Length``.
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 ** 3
#: The slowest transfer a download or upload is given time for, beyond the session's deadline.
DEFAULT_MIN_BYTES_PER_SECOND = 256 * 1024
_RENEW = object()


class FilesClient:
    """Files on one account's fileserver.

    Args:
        session: The account's session (its ``files_host``).
        aliases: Other spellings of the files host that stored URIs carry (e.g. the host the SDK saw,
            ``http://localhost:8081`` for ``http://127.0.0.1:8081``, or a former name); URLs on them count
            as the account's own and are fetched from ``files_host``. For ClearML SaaS,
            ``files.community.clear.ml`` is added automatically (see also :func:`loopback_aliases`).
        storage_options: fsspec options per URL prefix (``"s3://bucket"``, ``"s3://"``, ``"gs://"``,
            ``"azure://"``), e.g. ``{"s3://": {"key": ..., "secret": ..., "client_kwargs":
            {"endpoint_url": ...}}}``; carried for object-storage reads (``clearml_assets.storage`` picks the
            options of a URL and the endpoint they may go to), never sent to the API server.
        max_download_bytes: The largest download without a declared ``Content-Length``.
        min_bytes_per_second: The slowest transfer given time beyond the session's deadline.
    """

    def __init__(self, session: ClearMLSession, *, aliases: Sequence[str] = (),
                 storage_options: Mapping[str, Mapping[str, Any]] | None = None,
                 max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
                 min_bytes_per_second: float = DEFAULT_MIN_BYTES_PER_SECOND):
        self._session = session
        self.aliases = files_host_aliases(session.files_host, aliases)
        self.storage_options: dict[str, dict[str, Any]] = {
            prefix: dict(options) for prefix, options in (storage_options or {}).items()}
        self.max_download_bytes = max_download_bytes
        self.min_bytes_per_second = min_bytes_per_second

    @property
    def host(self) -> str | None:
        """The account's files host (None when it has none)."""
        return self._session.files_host

    # -- own URLs ----------------------------------------------------------------------------------
    def is_own(self, url: str) -> bool:
        """Whether ``url`` is on this account's fileserver or one of its aliases (scheme, host and port
        equal, under its path, no ``..`` even percent-encoded, no credentials of its own)."""
        return self.own_url(url) is not None

    def own_url(self, url: str) -> str | None:
        """``url`` on the account's files host (an alias spelling rewritten onto it), or None if it is not
        a file of this account's fileserver (then no ClearML token may be sent with it)."""
        if not self.host:
            return None
        for host in (self.host, *self.aliases):
            rest = path_under(host, url)
            if rest is not None:
                return self.host + rest
        return None

    # -- downloads ---------------------------------------------------------------------------------
    def download(self, url: str, dest: Path, chunk_size: int = 1024 * 1024, *, digest: Any = None) -> int:
        """Stream a fileserver URL to ``dest`` (written to a temporary name, renamed when whole).

        A fileserver answering 429/502/503/504 is asked again (``retries`` times, honouring ``Retry-After``
        within the deadline); a 401 once more after logging in again.

        Args:
            url: A URL on this account's fileserver (or an alias of it).
            dest: Where the file goes.
            chunk_size: Bytes per read.
            digest: A ``hashlib`` object updated with the bytes as they are written (one pass over the
                data instead of hashing the file again afterwards).

        Returns:
            The number of bytes written.

        Raises:
            ClearMLRequestError: The URL is not on this account's fileserver, the file is missing (404),
                fewer bytes arrived than ``Content-Length`` announced, or more than ``max_download_bytes``.
            ClearMLConnectionError: The fileserver could not be reached or did not finish in time.
        """
        own = self._own_or_refuse(url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        deadline = self._session.deadline()
        renewed = busy = 0
        try:
            while True:
                outcome = self._attempt(url, own, tmp, deadline, chunk_size, digest, renewed > 0, busy)
                if outcome is _RENEW:
                    renewed += 1  # token expired or server restarted: once more, logged in again
                elif isinstance(outcome, float):
                    busy += 1  # nothing of this answer was written: a fresh attempt starts from byte 0
                    time.sleep(outcome)
                else:
                    os.replace(tmp, dest)
                    return outcome
        finally:
            tmp.unlink(missing_ok=True)

    def _own_or_refuse(self, url: str) -> str:
        own = self.own_url(url)
        if own is None:
            shown = redact_url_credentials(url)  # a password in the URL goes into no message or metadata
            raise ClearMLRequestError(
                f"ClearML account '{self._session.account}': refusing to download {shown!r}: it is not on the "
                f"account's fileserver {self.host}.", metadata={"url": shown})
        return own

    def _attempt(self, url: str, own: str, tmp: Path, deadline: Deadline, chunk_size: int, digest: Any,
                 renewed: bool, busy: int) -> Any:
        """One GET: the bytes written, ``_RENEW`` after a first 401, or the seconds to wait when busy."""
        session = self._session
        try:
            token = session.token(refresh=renewed, deadline=deadline)
            with bounded(deadline), session.http.get(own, stream=True, timeout=deadline.timeout(*session.timeout),
                                                     proxies=session.proxies(own),
                                                     headers={"Authorization": f"Bearer {token}"}) as resp:
                if resp.status_code == 401 and not renewed:
                    return _RENEW
                wait = session.retry_wait(resp.headers, busy, deadline) \
                    if resp.status_code in RETRY_STATUSES and busy < session.retries else None
                if wait is not None:
                    return float(wait)
                if resp.status_code != 200:
                    raise ClearMLRequestError(
                        f"ClearML account '{session.account}': download of {url} failed with HTTP "
                        f"{resp.status_code}", metadata={"url": url, "http_status": resp.status_code})
                return self._save(resp, url, tmp, deadline, chunk_size, digest)
        except TooLarge as exc:
            raise failures.too_large(session.account, self.host or "", f"download of {url}", exc.size, exc.cap,
                                     exc.declared) from None
        except failures.TRANSPORT_ERRORS as exc:
            raise self._broken(exc, url, deadline) from None

    def _save(self, resp: requests.Response, url: str, tmp: Path, deadline: Deadline, chunk_size: int,
              digest: Any) -> int:
        """Write the answer to ``tmp``; the deadline grows with the bytes the transfer needs, not with time."""
        declared = declared_length(resp)
        encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"
        base = self._session.deadline_seconds
        if declared is not None:
            deadline.allow(base + declared / self.min_bytes_per_second)
        written = 0
        with open(tmp, "wb") as out:
            for chunk in iter_body(resp, self.max_download_bytes, chunk_size):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
                if declared is None:
                    deadline.allow(base + written / self.min_bytes_per_second)
        if declared is not None and not encoded and declared != written:
            raise ClearMLRequestError(
                f"ClearML account '{self._session.account}': download of {url} was cut short: {written} of "
                f"{declared} bytes arrived. Try again.", metadata={"url": url})
        return written

    def _broken(self, exc: Exception, url: str, deadline: Deadline) -> Exception:
        session = self._session
        if deadline.expired():
            return failures.deadline_passed(session.account, self.host or "", f"download of {url}",
                                            deadline.end - deadline.start)
        return failures.unreachable(session.account, self.host or "", exc, f"download of {url}")

    # -- uploads -----------------------------------------------------------------------------------
    def upload(self, path: str, source: Path) -> str:
        """Stream ``source`` to this account's fileserver at ``path`` (as the SDK does: a multipart POST
        to the fileserver's root whose field name is the path); returns the file's URL.

        Raises:
            ClearMLConfigError: The account has no fileserver.
            ClearMLRequestError: The fileserver refused the upload.
            ClearMLConnectionError: The fileserver could not be reached or did not finish in time.
        """
        session = self._session
        if not self.host:
            raise ClearMLConfigError(f"ClearML account '{session.account}' has no files_host: set it to upload files")
        path = path.lstrip("/")
        deadline = session.deadline(session.deadline_seconds + Path(source).stat().st_size / self.min_bytes_per_second)
        for attempt in (0, 1):
            status = self._post_file(path, Path(source), deadline, renew=attempt == 1)
            if status == 401 and attempt == 0:
                continue
            if status != 200:
                raise ClearMLRequestError(
                    f"ClearML account '{session.account}': upload of {path!r} to {self.host} failed with "
                    f"HTTP {status}", metadata={"http_status": status})
            return f"{self.host}/{quote(path)}"
        raise AssertionError("unreachable")

    def _post_file(self, path: str, source: Path, deadline: Deadline, renew: bool) -> int:
        from requests_toolbelt import MultipartEncoder

        session = self._session
        try:
            token = session.token(refresh=renew, deadline=deadline)
            with open(source, "rb") as handle, bounded(deadline):
                form = MultipartEncoder(fields={path: (Path(path).name, handle, "application/octet-stream")})
                with session.http.post(f"{self.host}/", data=form, timeout=deadline.timeout(*session.timeout),
                                       stream=True, proxies=session.proxies(f"{self.host}/"),
                                       headers={"Authorization": f"Bearer {token}",
                                                "Content-Type": form.content_type}) as resp:
                    for _ in iter_body(resp, session.max_response_bytes):
                        pass
                    return resp.status_code
        except TooLarge as exc:
            raise failures.too_large(session.account, self.host or "", f"upload of {path!r}", exc.size, exc.cap,
                                     exc.declared) from None
        except failures.TRANSPORT_ERRORS as exc:
            raise self._broken(exc, f"{self.host}/{path}", deadline) from None

