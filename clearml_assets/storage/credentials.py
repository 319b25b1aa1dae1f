"""Which endpoint gets which storage credentials.

Two kinds of storage URL reach here:

- an **export root** the operator chose (``s3://bucket/prefix``): its fsspec options, else the standard
  environment of the filesystem (``AWS_*`` variables and profiles, ``AZURE_STORAGE_*``);
- a **URL ClearML recorded** (an artifact, model or debug image on ``s3://``/``gs://``/``azure://``): the
  account's ``storage_options`` for the longest matching URL prefix.

Secrets found in options or the environment are masked in every message (:func:`secret_values`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

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
    """``url`` without a ``user:password@`` part."""
    return re.sub(r"(?<=://)[^/@]*@", "", str(url))


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
def options_for(url: str, storage_options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The fsspec options of the longest ``storage_options`` prefix matching ``url`` (``{}`` if none)."""
    best, length = {}, -1
    for prefix, options in (storage_options or {}).items():
        if url.startswith(prefix) and len(prefix) > length:
            best, length = dict(options), len(prefix)
    return best


def client_storage_options(client, url: str) -> dict[str, Any]:
    """The fsspec options the account has for ``url`` (``storage_options_for`` when the client offers it)."""
    lookup = getattr(client, "storage_options_for", None)
    if callable(lookup):
        return dict(lookup(url) or {})
    return options_for(url, getattr(client, "storage_options", None) or {})


def fsspec_url(url: str) -> tuple[str, str, str | None]:
    """``(fsspec protocol, bucket/key path, host)``; ClearML writes a non-AWS S3 endpoint into the URI
    (``s3://host:port/bucket/key``), a segment no bucket name can be (bucket names hold no ``:``)."""
    scheme, rest = url.split("://", 1)
    protocol = OBJECT_SCHEMES[scheme.lower()]
    first, _, tail = rest.partition("/")
    if protocol == "s3" and ":" in first and tail:
        return protocol, tail, first
    return protocol, rest, None
