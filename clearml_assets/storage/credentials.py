"""Which endpoint gets which storage credentials.

Two kinds of storage URL reach here:

- an **export root** the operator chose (``s3://bucket/prefix``): its fsspec options, else the standard
  environment of the filesystem (``AWS_*`` variables and profiles, ``AZURE_STORAGE_*``);
- a **URL ClearML recorded** (an artifact, model or debug image on ``s3://``/``gs://``/``azure://``): the
  account's ``storage_options`` for the longest matching URL prefix, and only when the endpoint they are
  configured for is the URL's (:func:`object_access`); a task's author chooses these URLs, so anything
  else is not fetched at all, and machine-wide credentials are never used for them.

Secrets found in options or the environment are masked in every message (:func:`secret_values`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..client.urls import strip_url_credentials

PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
            "abfss": "adlfs"}
OBJECT_SCHEMES = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "azure": "az", "az": "az", "abfs": "abfs"}
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
              "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY")
_SECRET_OPTION = re.compile(r"secret|token|password|credential|sas|key$|account_key|connection_string", re.I)
_S3_DEFAULT_CONFIG = {"connect_timeout": 10, "read_timeout": 120,
                      "retries": {"max_attempts": 3, "mode": "standard"}}


# ------------------------------------------------------------------------------------- export roots
def root_options(protocol: str, options: dict[str, Any]) -> dict[str, Any]:
    """fsspec options of an export root: ``options`` plus the S3 endpoint from ``AWS_ENDPOINT_URL(_S3)``,
    bounded timeouts and retries, and no caches (another machine may have written the store)."""
    if protocol in ("file", "local"):
        return {"auto_mkdir": True, **options}
    if protocol not in ("s3", "s3a"):
        return options
    options = dict(options)
    options.pop("credentials_chain", None)  # the account's opt-in to the machine's chain: s3fs's default
    client_kwargs = dict(options.get("client_kwargs") or {})
    endpoint = options.pop("endpoint_url", None) or client_kwargs.get("endpoint_url") \
        or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    config = dict(_S3_DEFAULT_CONFIG)
    config.update(options.get("config_kwargs") or {})
    options["config_kwargs"] = config
    options.setdefault("skip_instance_cache", True)
    options.setdefault("use_listings_cache", False)
    return options


def endpoint_of(protocol: str, options: Mapping[str, Any]) -> str | None:
    """The endpoint an export root's requests go to, for messages (``None`` where it says nothing)."""
    if protocol in ("s3", "s3a"):
        endpoint = (options.get("client_kwargs") or {}).get("endpoint_url")
        return strip_userinfo(endpoint) if endpoint else "AWS S3"
    return None


def strip_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part (up to the authority's last ``@``, as the client masks it)."""
    return strip_url_credentials(str(url))


def secret_values(options: Mapping[str, Any]) -> set[str]:
    """The values of secret-looking options (keys, tokens, connection strings), nested ones too."""
    found: set[str] = set()
    for key, value in options.items():
        if isinstance(value, Mapping):
            found |= secret_values(value)
        elif isinstance(value, str) and _SECRET_OPTION.search(str(key)):
            found.add(value)
    return found


def environment_secrets() -> set[str]:
    """The storage secrets of the standard environment (masked in messages as well)."""
    return {v for v in (os.environ.get(k) for k in SECRET_ENV) if v}


# -------------------------------------------------------------------------------- recorded URLs
@dataclass(frozen=True)
class ObjectAccess:
    """How one recorded object-store URL is read, or why it is not.

    Attributes:
        protocol: The fsspec protocol (``s3``, ``gcs``, ``az``).
        path: The object as fsspec names it (``bucket/key``, ``container/blob``).
        options: The fsspec options: the account's credentials and the endpoint they belong to.
        endpoint: Where the requests go (for messages).
        refused: Why the URL is not fetched (``None``: fetch it with ``options``).
    """

    protocol: str
    path: str
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    endpoint: str = ""
    refused: str | None = None


def object_access(url: str, options: Mapping[str, Any]) -> ObjectAccess:
    """Where a recorded ``url`` is read from with the account's ``options`` for it (:func:`options_for`).

    Storage credentials go only to an endpoint the account configured them for, so a URL is refused
    (``refused`` says why; the caller records it as an external reference, no request is made) when:

    - the account has no storage credentials for it (machine-wide ones, ``AWS_*``, ``~/.aws``, Google's
      or Azure's defaults, are never used for a URL a task recorded), or
    - it names another endpoint: ``s3://host:port/bucket/key`` whose ``host:port`` is not the endpoint of
      the credentials, an ``azure://<account>.blob.core.windows.net/...`` of another storage account, or a
      ``gs://`` "bucket" that is a ``host:port``.

    A URL naming no endpoint (``s3://bucket/key``) goes to the endpoint the credentials name (AWS S3 when
    they name none). Requests always go to the configured endpoint, never to a host taken from the URL.
    """
    scheme, _, rest = url.partition("://")
    protocol = OBJECT_SCHEMES.get(scheme.lower())
    if protocol is None:
        return ObjectAccess("", rest, refused=f"unsupported object-store scheme {scheme!r}")
    options = dict(options or {})
    if not options:
        return ObjectAccess(protocol, rest, refused=_no_credentials(scheme, rest))
    if protocol == "s3":
        return _s3_access(scheme, rest, options)
    if protocol == "gcs":
        return _gs_access(rest, options)
    return _azure_access(protocol, scheme, rest, options)


def _s3_access(scheme: str, rest: str, options: dict[str, Any]) -> ObjectAccess:
    first, _, tail = rest.partition("/")
    client_kwargs = dict(options.pop("client_kwargs", None) or {})
    endpoint = str(options.pop("endpoint_url", "") or client_kwargs.get("endpoint_url") or "")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    options.pop("secure", None)  # clearml.conf's flag, already part of the endpoint URL
    if not options.pop("credentials_chain", False) and not _S3_CREDENTIALS & set(options):
        options["anon"] = True  # configured without keys: never the machine's own credentials
    options = {**options, "client_kwargs": client_kwargs,
               "config_kwargs": {**_S3_DEFAULT_CONFIG, **(options.get("config_kwargs") or {})}}
    where = strip_userinfo(endpoint) if endpoint else "AWS S3"
    if endpoint and tail and _same_endpoint(first, endpoint):
        return ObjectAccess("s3", tail, options, where)
    if ":" in first or first.startswith("["):  # bucket names hold no ':': ClearML's s3://host:port/bucket
        return ObjectAccess("s3", rest, refused=_foreign(f"the S3 endpoint {_host_only(first)}", where))
    return ObjectAccess("s3", rest, options, where)


def _gs_access(rest: str, options: dict[str, Any]) -> ObjectAccess:
    first = rest.partition("/")[0]
    where = strip_userinfo(str(options.get("endpoint_url") or "Google Cloud Storage"))
    if ":" in first or first.startswith("["):  # bucket names hold no ':'
        return ObjectAccess("gcs", rest, refused=_foreign(f"the host {_host_only(first)}", where))
    options.setdefault("token", "anon")  # configured without a key: never Google's default credentials
    return ObjectAccess("gcs", rest, options, where)


def _azure_access(protocol: str, scheme: str, rest: str, options: dict[str, Any]) -> ObjectAccess:
    first, _, tail = rest.partition("/")
    container, _, host = first.rpartition("@")  # abfs://container@account.dfs.core.windows.net/path
    path = f"{container}/{tail}" if container else tail
    account = str(options.get("account_name") or _connection_field(options, "AccountName") or "")
    hosts = {str(options.get("account_host") or "").lower()} - {""} or \
        {f"{account}.blob.core.windows.net".lower(), f"{account}.dfs.core.windows.net".lower()}
    where = str(_connection_field(options, "BlobEndpoint") or f"https://{sorted(hosts)[0]}")
    if not account or host.lower() not in hosts or not path:
        return ObjectAccess(protocol, rest, refused=_foreign(f"the Azure storage host {_host_only(host)}", where))
    if not _AZURE_CREDENTIALS & set(options):
        options["anon"] = True  # configured without a key: never Azure's default credentials
    return ObjectAccess(protocol, path, options, strip_userinfo(where))


_S3_CREDENTIALS = {"key", "secret", "token", "profile", "anon", "session"}
_AZURE_CREDENTIALS = {"account_key", "sas_token", "connection_string", "credential", "anon", "client_secret"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _same_endpoint(segment: str, endpoint: str) -> bool:
    """Whether ``host[:port]`` (a URL's first segment) is the host and port of ``endpoint``; a segment
    without a port means the endpoint scheme's default port, the loopback spellings are one host."""
    want = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    got = urlsplit(f"//{segment}")
    try:
        want_port = want.port or _DEFAULT_PORTS.get(want.scheme)
        got_port = got.port or _DEFAULT_PORTS.get(want.scheme)
    except ValueError:
        return False
    want_host, got_host = want.hostname or "", got.hostname or ""
    same_host = got_host == want_host or (got_host in _LOOPBACK and want_host in _LOOPBACK)
    return bool(got_host) and same_host and got_port == want_port


def _connection_field(options: Mapping[str, Any], name: str) -> str | None:
    for part in str(options.get("connection_string") or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


_SETTINGS = {"s3": "CLEARML_S3_KEY_<NAME> and CLEARML_S3_SECRET_<NAME> (CLEARML_S3_ENDPOINT_<NAME>)",
             "gcs": "CLEARML_GS_CREDENTIALS_<NAME>", "az": "CLEARML_AZURE_ACCOUNT_<NAME> and CLEARML_AZURE_KEY_<NAME>"}


def _no_credentials(scheme: str, rest: str) -> str:
    where = f"{scheme}://{_host_only(rest.partition('/')[0])}"
    setting = _SETTINGS.get(OBJECT_SCHEMES.get(scheme.lower(), ""), "the account's storage settings")
    return (f"the account has no storage credentials for {where}: not fetched (storage credentials come from the "
            f"account only: {setting}, or its clearml.conf; see docs/accounts.md)")


def _host_only(segment: str) -> str:
    """A URL segment without a ``user:password@`` part (never shown)."""
    return segment.rpartition("@")[2]


def _foreign(named: str, configured: str) -> str:
    return (f"on {named}, not the endpoint the account's storage credentials are for ({configured}): not "
            "fetched (storage credentials go only to the endpoints the account configures, see docs/accounts.md)")


def options_for(url: str, storage_options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The options of the longest ``storage_options`` prefix of ``url`` ending at a path boundary (``s3://b``
    is a prefix of ``s3://b/k``, not of ``s3://b2/k``); ``{}`` if none."""
    best, length = {}, -1
    for prefix, options in (storage_options or {}).items():
        boundary = prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix):len(prefix) + 1] == "/"
        if url.startswith(prefix) and boundary and len(prefix) > length:
            best, length = dict(options), len(prefix)
    return best


def client_storage_options(client, url: str) -> dict[str, Any]:
    """The fsspec options the account of ``client`` has for ``url`` (:func:`options_for` on the
    ``storage_options`` its files client carries)."""
    return options_for(url, client.files.storage_options)
