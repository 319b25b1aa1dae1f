"""Accounts and storage credentials from a ``clearml.conf`` the user already has (from ``clearml-init``).

Read keys (HOCON, as the SDK reads them): ``api.api_server`` (or ``api.host``), ``api.web_server``,
``api.files_server``, ``api.credentials.access_key``/``secret_key``; ``sdk.aws.s3`` (``key``, ``secret``,
``region``, ``use_credentials_chain`` and per-bucket ``credentials`` with ``bucket``, ``host``, ``secure``),
``sdk.google.storage`` (``project``, ``credentials_json`` and per-bucket ``credentials``),
``sdk.azure.storage.containers`` (``account_name``, ``account_key``, ``container_name``) and
``sdk.storage.path_substitution`` (a ``registered_prefix`` served at the files host becomes a files-host
alias). Storage credentials become fsspec options per URL prefix (``ClearMLClient(storage_options=...)``);
:func:`clearml_assets.storage.credentials.object_access` decides which endpoint they are sent to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ClearMLConfigError


@dataclass(frozen=True)
class ClearMLConf:
    """What one ``clearml.conf`` says about an account (empty strings for what it leaves out)."""

    api_host: str = ""
    web_host: str = ""
    files_host: str = ""
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    storage_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    files_host_aliases: tuple[str, ...] = ()


def read_clearml_conf(path: str | Path, account: str) -> ClearMLConf:
    """Parse a ``clearml.conf``.

    Raises:
        ClearMLConfigError: The file is missing or is not valid HOCON (naming the file and the account).
    """
    # the SDK's own HOCON parser (vendored in clearml); imported here, not at module load, as it is slow
    from clearml.utilities.pyhocon import ConfigFactory

    conf_path = Path(path).expanduser()
    try:
        tree = ConfigFactory.parse_string(conf_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClearMLConfigError(
            f"ClearML account '{account}': cannot read clearml.conf {conf_path} ({exc.strerror or exc}). Fix "
            f"CLEARML_CONFIG_FILE_{account.upper()} or create the file with `clearml-init`.") from None
    except Exception as exc:  # pyhocon raises its own parse exceptions
        raise ClearMLConfigError(
            f"ClearML account '{account}': clearml.conf {conf_path} is not valid HOCON "
            f"({type(exc).__name__}). Fix the file (compare with `clearml-init`'s output).") from None
    return conf_from_tree(tree)


def conf_from_tree(tree: Any) -> ClearMLConf:
    """The account settings of a parsed configuration tree (``ConfigTree`` or nested dicts)."""
    api = _get(tree, "api")
    creds = _get(api, "credentials")
    files_host = _str(_get(api, "files_server")).rstrip("/")
    return ClearMLConf(
        api_host=_str(_get(api, "api_server") or _get(api, "host")).rstrip("/"),
        web_host=_str(_get(api, "web_server")).rstrip("/"),
        files_host=files_host,
        access_key=_str(_get(creds, "access_key")),
        secret_key=_str(_get(creds, "secret_key")),
        storage_options=storage_options_from_tree(_get(tree, "sdk")),
        files_host_aliases=_substituted_hosts(_get(tree, "sdk"), files_host),
    )


def storage_options_from_tree(sdk: Any) -> dict[str, dict[str, Any]]:
    """fsspec options per URL prefix from the ``sdk`` section (s3, gs, azure)."""
    return {**_s3_conf_options(_get(_get(sdk, "aws"), "s3")), **_gs_conf_options(_get(_get(sdk, "google"), "storage")),
            **_azure_conf_options(_get(_get(_get(sdk, "azure"), "storage"), "containers"))}


def _s3_conf_options(s3: Any) -> dict[str, dict[str, Any]]:
    """``sdk.aws.s3``: the global key pair (AWS), per-bucket and per-host ``credentials``; an entry with
    ``use_credentials_chain: true`` and no key pair opts into the machine's AWS credential chain."""
    options: dict[str, dict[str, Any]] = {}
    region, chain = _str(_get(s3, "region")), _flag(_get(s3, "use_credentials_chain"))
    if _get(s3, "key") and _get(s3, "secret"):
        options["s3://"] = s3_options(_str(_get(s3, "key")), _str(_get(s3, "secret")), region=region)
    elif chain:
        options["s3://"] = s3_options("", "", region=region)
    for entry in _list(_get(s3, "credentials")):
        bucket, host = _str(_get(entry, "bucket")), _str(_get(entry, "host"))
        key, secret = _str(_get(entry, "key") or _get(s3, "key")), _str(_get(entry, "secret") or _get(s3, "secret"))
        if not (bucket or host) or not (key and secret or _flag(_get(entry, "use_credentials_chain", chain))):
            continue
        endpoint = ""
        if host:
            scheme = "https" if _get(entry, "secure", True) not in (False, "false") else "http"
            endpoint = host if "://" in host else f"{scheme}://{host}"
        # the SDK writes objects of a non-AWS endpoint as s3://<host>/<bucket>/<key>
        prefix = "s3://" + "/".join(p for p in (host.split("://")[-1], bucket) if p)
        options[prefix] = s3_options(key, secret, region=_str(_get(entry, "region") or region), endpoint_url=endpoint)
    return options


def _gs_conf_options(gs: Any) -> dict[str, dict[str, Any]]:
    """``sdk.google.storage``: the project's service account and per-bucket ``credentials``."""
    options: dict[str, dict[str, Any]] = {}
    if _get(gs, "credentials_json"):
        options["gs://"] = _gs_options(_get(gs, "credentials_json"), _get(gs, "project"))
    for entry in _list(_get(gs, "credentials")):
        if _get(entry, "bucket") and (_get(entry, "credentials_json") or _get(gs, "credentials_json")):
            options[f"gs://{_str(_get(entry, 'bucket'))}"] = _gs_options(
                _get(entry, "credentials_json") or _get(gs, "credentials_json"),
                _get(entry, "project") or _get(gs, "project"))
    return options


def _azure_conf_options(containers: Any) -> dict[str, dict[str, Any]]:
    """``sdk.azure.storage.containers``: a storage account and key, per container when one is named."""
    options: dict[str, dict[str, Any]] = {}
    for entry in _list(containers):
        name, key = _str(_get(entry, "account_name")), _str(_get(entry, "account_key"))
        if name and key:
            container = _str(_get(entry, "container_name"))
            prefix = f"azure://{name}.blob.core.windows.net" + (f"/{container}" if container else "")
            options[prefix] = {"account_name": name, "account_key": key}
    return options


def s3_options(key: str, secret: str, *, region: str = "", endpoint_url: str = "") -> dict[str, Any]:
    """s3fs options for a key pair, a region and an S3-compatible endpoint (empty: AWS). Without a key
    pair the options say ``credentials_chain``: the machine's AWS credential chain, by the account's choice."""
    client_kwargs = {k: v for k, v in (("endpoint_url", endpoint_url), ("region_name", region)) if v}
    creds: dict[str, Any] = {"key": key, "secret": secret} if key and secret else {"credentials_chain": True}
    return {**creds, **({"client_kwargs": client_kwargs} if client_kwargs else {})}


def _gs_options(credentials_json: Any, project: Any) -> dict[str, Any]:
    return {"token": _str(credentials_json), **({"project": _str(project)} if project else {})}


def _substituted_hosts(sdk: Any, files_host: str) -> tuple[str, ...]:
    """``path_substitution`` prefixes that stand for the files host (files stored under an old name)."""
    if not files_host:
        return ()
    hosts = []
    for entry in _list(_get(_get(sdk, "storage"), "path_substitution")):
        registered, local = _str(_get(entry, "registered_prefix")), _str(_get(entry, "local_prefix"))
        if registered.startswith(("http://", "https://")) and local.rstrip("/") == files_host:
            hosts.append(registered.rstrip("/"))
    return tuple(hosts)


def _get(tree: Any, key: str, default: Any = None) -> Any:
    if tree is None or not hasattr(tree, "get"):
        return default
    try:
        value = tree.get(key, default)
    except Exception:  # pyhocon raises on a path through a non-tree value
        return default
    return default if value is None else value


def _list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "on", "1")


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()
