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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from .credentials import OBJECT_SCHEMES, ObjectAccess, client_storage_options, object_access, options_for

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_CHUNK = 1 << 20


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
                 digest: Any = None) -> int:
    """Copy an object-store ``url`` to ``dest`` (temporary name, renamed when whole); returns the bytes.

    Read with the options of the longest ``storage_options`` prefix of ``url``, from the endpoint they
    name (:func:`~.credentials.object_access`).

    Raises:
        PermissionError: The account's storage credentials are not for this URL's endpoint (not fetched).
        FileNotFoundError: The object does not exist.
        ImportError: The fsspec backend of the scheme (``s3fs``, ``gcsfs``, ``adlfs``) is not installed.
    """
    access = object_access(url, options_for(url, storage_options))
    if access.refused:
        raise PermissionError(access.refused)
    fs = _filesystem(url, access)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    written = 0
    try:
        with fs.open(access.path, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
        os.replace(tmp, dest)
        return written
    finally:
        tmp.unlink(missing_ok=True)


def _filesystem(url: str, access: ObjectAccess):
    import fsspec

    try:
        return fsspec.filesystem(access.protocol, skip_instance_cache=True, **access.options)
    except ImportError as exc:
        extra = {"s3": "s3", "gcs": "gcs"}.get(access.protocol, "azure")
        raise ImportError(f"reading {url.split('://')[0]}:// needs the fsspec backend for {access.protocol!r} "
                          f"(pip install 'clearml_assets[{extra}]'): {exc}") from exc


def locate(client, url: str | None) -> Location:
    """:func:`classify` with the client's files host and aliases (the client's ``files.own_url`` decides);
    an object-store URL the account's storage credentials are not for is ``external`` with the reason."""
    if url:
        rewritten = client.files.own_url(url)
        if rewritten:
            return Location("fileserver", rewritten)
        if _is_http(url):  # the client decided: not the account's fileserver
            return classify(url, None)
    where = classify(url, client.files_host, client.files.aliases)
    if where.kind == "object_store":
        refused = object_access(where.url, client_storage_options(client, where.url)).refused
        if refused:
            return Location("external", where.url, refused)
    return where


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))
