"""Where a file ClearML recorded can be fetched from, and fetching it from object storage.

ClearML stores artifacts, model weights and debug images on its fileserver, or wherever the SDK's
``output_uri`` pointed: ``s3://``, ``gs://``, ``azure://`` (the SDK uploads there with its own storage
credentials and records the URI). :func:`classify` decides, per URI, how an archive gets it:

- ``fileserver``: on the account's files host or one of its aliases (the SDK may spell the same host
  ``localhost`` while the account says ``127.0.0.1``): fetched with the ClearML token;
- ``object_store``: ``s3://``/``gs://``/``azure://``: read with fsspec using the account's
  ``storage_options`` for the longest matching prefix, from the endpoint they are configured for (never
  with the ClearML token; :func:`~.credentials.object_access`);
- ``external``: anything else (``file://`` on another machine, public ``https://`` media, an object-store
  URL on an endpoint the account has no storage credentials for): recorded with the reason, not fetched
  and not a failure.

Every object read is bounded (:class:`ObjectReadLimits`): in bytes by the size its ``HEAD`` declares, itself
at most ``max_bytes`` (a larger object is refused before its body is asked for), and in time by one total
deadline over the ``HEAD``, the ``GET`` and every byte (``deadline_seconds`` plus what the declared size
needs at ``min_bytes_per_second``), so an endpoint that drips or sends more than it declared cannot hold an
export.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ClearMLConfigError, ClearMLConnectionError, ClearMLRequestError
from .credentials import (OBJECT_SCHEMES, ObjectAccess, client_storage_options, object_access, options_for,
                          strip_userinfo)

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_CHUNK = 1 << 20
_MIB = 1 << 20
#: The largest object read (``CLEARML_ASSETS_OBJECT_MAX_MIB``), as the client's largest fileserver download.
DEFAULT_MAX_OBJECT_BYTES = 64 << 30
#: The time an object read gets beyond what its size needs (``CLEARML_ASSETS_OBJECT_DEADLINE_SECONDS``).
DEFAULT_OBJECT_DEADLINE_SECONDS = 60.0
#: The slowest transfer an object's size is given time for (``CLEARML_ASSETS_OBJECT_MIN_KIB_PER_SECOND``).
DEFAULT_MIN_BYTES_PER_SECOND = 256 * 1024


@dataclass(frozen=True)
class ObjectReadLimits:
    """The bounds of one object-store read.

    Attributes:
        max_bytes: The largest object read; one declaring more is refused before its body is requested.
        deadline_seconds: The time the whole read (``HEAD``, ``GET``, every byte) gets beyond what its size
            needs.
        min_bytes_per_second: The slowest transfer the declared size is given time for.
    """

    max_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    deadline_seconds: float = DEFAULT_OBJECT_DEADLINE_SECONDS
    min_bytes_per_second: float = DEFAULT_MIN_BYTES_PER_SECOND

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ObjectReadLimits":
        """The limits set by ``CLEARML_ASSETS_OBJECT_MAX_MIB``, ``CLEARML_ASSETS_OBJECT_DEADLINE_SECONDS`` and
        ``CLEARML_ASSETS_OBJECT_MIN_KIB_PER_SECOND`` (the defaults where unset).

        Raises:
            ClearMLConfigError: a value is not a positive number.
        """
        env = os.environ if env is None else env
        return cls(int(_positive(env, "CLEARML_ASSETS_OBJECT_MAX_MIB", DEFAULT_MAX_OBJECT_BYTES / _MIB) * _MIB),
                   _positive(env, "CLEARML_ASSETS_OBJECT_DEADLINE_SECONDS", DEFAULT_OBJECT_DEADLINE_SECONDS),
                   _positive(env, "CLEARML_ASSETS_OBJECT_MIN_KIB_PER_SECOND", DEFAULT_MIN_BYTES_PER_SECOND / 1024)
                   * 1024)

    def seconds_for(self, size: int | None) -> float:
        """The total deadline of a read of ``size`` bytes (``None``: not declared yet)."""
        return self.deadline_seconds + (size or 0) / self.min_bytes_per_second


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ClearMLConfigError(f"{name}={raw!r} is not a positive number; unset it for the default {default:g}")
    return value


@dataclass(frozen=True)
class Location:
    """How one recorded URI is fetched: ``kind`` is ``fileserver``, ``object_store`` or ``external``."""

    kind: str
    url: str
    reason: str | None = None


def _origin(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, host, port or default, parts.path


def fileserver_url(url: str, files_host: str | None, aliases: Sequence[str] = ()) -> str | None:
    """``url`` rewritten onto ``files_host`` when it is on the files host or one of its ``aliases``.

    A loopback files host also accepts the other loopback spellings on the same port (``localhost`` vs
    ``127.0.0.1``), which is how the SDK and an account's settings often disagree.
    """
    if not url or not files_host:
        return None
    target, found = _origin(files_host), _origin(url)
    if target is None or found is None or found[0] not in ("http", "https"):
        return None
    parts = urlsplit(url)
    if parts.username or parts.password:
        return None
    candidates = [files_host, *aliases]
    for base in candidates:
        origin = _origin(base.rstrip("/"))
        if origin is None:
            continue
        same_host = found[1] == origin[1] or (found[1] in _LOOPBACK and origin[1] in _LOOPBACK
                                              and base is files_host)
        if found[0] != origin[0] or not same_host or found[2] != origin[2]:
            continue
        prefix = origin[3].rstrip("/")
        path = unquote(parts.path)
        if "\0" in path or ".." in path.replace("\\", "/").split("/") or not path.startswith(prefix + "/"):
            continue
        own = urlsplit(files_host.rstrip("/"))
        rel = parts.path[len(urlsplit(base.rstrip("/")).path.rstrip("/")):]
        return urlunsplit((own.scheme, own.netloc, own.path.rstrip("/") + rel, parts.query, ""))
    return None


def classify(url: str | None, files_host: str | None, aliases: Sequence[str] = ()) -> Location:
    """How ``url`` (a URI ClearML recorded) is fetched; see the module docstring."""
    if not url:
        return Location("external", "", "no URI was recorded")
    own = fileserver_url(url, files_host, aliases)
    if own is not None:
        return Location("fileserver", own)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in OBJECT_SCHEMES:
        return Location("object_store", url)
    if scheme == "file" or not scheme:
        return Location("external", url, "a local path on the machine that ran the task; it cannot be "
                                         "fetched from here")
    if scheme in ("http", "https"):
        return Location("external", url, "a web URL outside the account's fileserver; recorded, not "
                                         "fetched (the ClearML token is never sent to another host)")
    return Location("external", url, f"unsupported URI scheme {scheme!r}")


def fetch_object(url: str, dest: Path, storage_options: Mapping[str, Mapping[str, Any]], *,
                 digest: Any = None, account: str = "", limits: ObjectReadLimits | None = None) -> int:
    """Copy an object-store ``url`` to ``dest`` (temporary name, renamed when whole); returns the bytes.

    Read with the options of the longest ``storage_options`` prefix of ``url``, from the endpoint they
    name (:func:`~.credentials.object_access`), within ``limits`` (default :meth:`ObjectReadLimits.from_env`).

    Args:
        account: The ClearML account whose storage credentials are used (named in errors).

    Raises:
        PermissionError: The account's storage credentials are not for this URL's endpoint (not fetched).
        FileNotFoundError: The object does not exist.
        ImportError: The fsspec backend of the scheme (``s3fs``, ``gcsfs``, ``adlfs``) is not installed.
        ClearMLRequestError: The object is larger than its declared size or ``limits.max_bytes``.
        ClearMLConnectionError: The read did not finish within its deadline, or ended short.
    """
    access = object_access(url, options_for(url, storage_options))
    if access.refused:
        raise PermissionError(access.refused)
    read = _BoundedRead(_filesystem(url, access), access.path, url, access.endpoint, account,
                        limits or ObjectReadLimits.from_env())
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    written = 0
    try:
        with open(tmp, "wb") as out:
            for chunk in read.chunks():
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
        os.replace(tmp, dest)
        return written
    finally:
        tmp.unlink(missing_ok=True)


class _BoundedRead:
    """One object read under a total deadline and a size cap, each request run on the filesystem's event
    loop and cancelled (its connection closed) when the deadline passes."""

    def __init__(self, fs, path: str, url: str, endpoint: str, account: str, limits: ObjectReadLimits):
        self.fs, self.path, self.limits = fs, path, limits
        self.what = f"ClearML account '{account or '?'}': reading {strip_userinfo(url)} from {endpoint or '?'}"
        self.start = time.monotonic()
        self.seconds = limits.seconds_for(None)

    def chunks(self) -> Iterator[bytes]:
        """The object's bytes: ``HEAD`` for its size, then a streamed ``GET`` (ranged ``GET`` s where the
        backend has no stream); never more than the declared size."""
        size = self._call(self.fs._info, self.path).get("size")
        if size is not None and size > self.limits.max_bytes:
            raise self._too_large(size, self.limits.max_bytes, f"its size is declared as {size:,} bytes")
        self.seconds = self.limits.seconds_for(size)
        cap = self.limits.max_bytes if size is None else size
        try:
            stream = self._call(self.fs.open_async, self.path, "rb")
        except NotImplementedError:  # adlfs: no streamed reads, ranged requests of one chunk each
            received = yield from self._ranges(cap)
        else:
            received = yield from self._stream(stream, cap)
        if size is not None and received != size:
            raise ClearMLConnectionError(f"{self.what} ended after {received:,} of the {size:,} bytes its size "
                                         "declares; nothing partial was kept. Try again.")

    def _stream(self, stream, cap: int) -> Iterator[bytes]:
        received = 0
        try:
            while chunk := self._call(stream.read, _CHUNK):
                received += len(chunk)
                if received > cap or (getattr(stream, "size", None) or 0) > cap:
                    raise self._too_large(max(received, stream.size or 0), cap, "it sent more than declared")
                yield chunk
        finally:
            body = getattr(stream, "r", None)  # s3fs: the GET's body, released on every way out
            if body is not None:
                body.close()
        return received

    def _ranges(self, cap: int) -> Iterator[bytes]:
        received = 0
        while received <= cap:
            want = min(_CHUNK, cap + 1 - received)
            chunk = self._call(self.fs._cat_file, self.path, start=received, end=received + want)
            if len(chunk) > want or received + len(chunk) > cap:
                raise self._too_large(received + len(chunk), cap, "it sent more than declared")
            received += len(chunk)
            if chunk:
                yield chunk
            if len(chunk) < want:
                break
        return received

    def _call(self, func, *args: Any, **kwargs: Any) -> Any:
        """``await func(*args, **kwargs)`` on the filesystem's loop, cancelled at the read's deadline."""
        from fsspec.asyn import sync
        from fsspec.exceptions import FSTimeoutError

        left = self.start + self.seconds - time.monotonic()
        try:
            if left <= 0:
                raise FSTimeoutError
            return sync(self.fs.loop, func, *args, timeout=left, **kwargs)
        except FSTimeoutError:
            raise ClearMLConnectionError(
                f"{self.what} did not finish within its {self.seconds:.0f}s deadline (the endpoint stopped "
                "answering or sent too slowly); nothing partial was kept. Check the endpoint; the deadline is "
                "CLEARML_ASSETS_OBJECT_DEADLINE_SECONDS plus the size at CLEARML_ASSETS_OBJECT_MIN_KIB_PER_SECOND.",
                metadata={"deadline_seconds": round(self.seconds, 1)}) from None

    def _too_large(self, size: int, cap: int, how: str) -> ClearMLRequestError:
        return ClearMLRequestError(
            f"{self.what}: {how}, over its cap of {cap:,} bytes (the size its HEAD declares, at most "
            f"{self.limits.max_bytes / _MIB:,.0f} MiB per object); it was not read further and nothing was kept. "
            "If the object is right, raise CLEARML_ASSETS_OBJECT_MAX_MIB.",
            metadata={"size_bytes": size, "cap_bytes": cap})


def _filesystem(url: str, access: ObjectAccess):
    import fsspec

    try:
        return fsspec.filesystem(access.protocol, skip_instance_cache=True, **access.options)
    except ImportError as exc:
        extra = {"s3": "s3", "gcs": "gcs"}.get(access.protocol, "azure")
        raise ImportError(f"reading {url.split('://')[0]}:// needs the fsspec backend for {access.protocol!r} "
                          f"(pip install 'clearml_assets[{extra}]'): {exc}") from exc


def locate(client, url: str | None) -> Location:
    """:func:`classify` with the client's files host and aliases (the client's ``files.own_url`` alone decides
    what is on the fileserver); an object-store URL the account's storage credentials are not for is
    ``external`` with the reason."""
    rewritten = client.files.own_url(url) if url else None
    if rewritten:
        return Location("fileserver", rewritten)
    where = classify(url, None)  # not the account's fileserver: object store or external
    if where.kind == "object_store":
        refused = object_access(where.url, client_storage_options(client, where.url)).refused
        if refused:
            return Location("external", where.url, refused)
    return where
