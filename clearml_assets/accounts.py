"""ClearML account settings and where they come from (environment variables, ``.env``).

Environment variables (Dagster loads ``.env`` from the folder it starts in):

* ``CLEARML_KEY_<NAME>`` / ``CLEARML_SECRET_<NAME>`` make account ``<name>`` (the seed's
  ``personal`` and ``original``); hosts ``CLEARML_API_HOST_<NAME>``, ``CLEARML_WEB_HOST_<NAME>``,
  ``CLEARML_FILES_HOST_<NAME>``, default ClearML SaaS.
* ``CLEARML_CONFIG_FILE_<NAME>`` (a ``clearml.conf`` from ``clearml-init``) makes account ``<name>`` too:
  hosts, key pair and storage credentials from the file; the variables above override it.
* Without a files host, it is derived from the API host as the SDK does (``api.`` -> ``files.``,
  port 8008 -> 8081); ``CLEARML_FILES_HOST_ALIASES_<NAME>`` (comma list) names other spellings of it.
* Object storage per account: ``CLEARML_S3_KEY_<NAME>``, ``CLEARML_S3_SECRET_<NAME>``,
  ``CLEARML_S3_ENDPOINT_<NAME>``, ``CLEARML_S3_REGION_<NAME>``, ``CLEARML_GS_CREDENTIALS_<NAME>``,
  ``CLEARML_AZURE_ACCOUNT_<NAME>``, ``CLEARML_AZURE_KEY_<NAME>``.
* ClearML's own ``CLEARML_API_ACCESS_KEY`` / ``CLEARML_API_SECRET_KEY`` with ``CLEARML_API_HOST``,
  ``CLEARML_WEB_HOST``, ``CLEARML_FILES_HOST`` make account ``default``.
* Account ``local`` is always there: the embedded server of ``$CLEARML_ASSETS_HOME``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import dagster as dg
from pydantic import Field

from .errors import ClearMLConfigError

LOCAL_ACCOUNT = "local"
ENV_ACCOUNT = "default"
SAAS_API_HOST = "https://api.clear.ml"
SAAS_WEB_HOST = "https://app.clear.ml"
SAAS_FILES_HOST = "https://files.clear.ml"
ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KEY_VAR = re.compile(r"CLEARML_(?:KEY|CONFIG_FILE)_([A-Z][A-Z0-9_]*)")
HOME_ENV = "CLEARML_ASSETS_HOME"
DEFAULT_HOME = "~/.clearml_assets"
EXPORTS_DIR = "exports"
STAGING_DIR = "staging"


def clearml_assets_home(home: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The one place the home folder is resolved: ``home`` if given, else ``$CLEARML_ASSETS_HOME``, else
    ``~/.clearml_assets`` (the local server, SDK caches, staging, exports), absolute.

    Prefer ``ClearMLResource.home_dir()`` inside assets: it honours the resource's ``home`` field.
    """
    env = os.environ if environ is None else environ
    chosen = str(home) if home else (env.get(HOME_ENV) or DEFAULT_HOME)
    return Path(chosen).expanduser().absolute()


def default_export_root(home: str | os.PathLike | None = None) -> Path:
    """``<home>/exports``: where archives go unless an export root is configured (the one place it is
    derived; ``ClearMLResource.export_root_dir()`` adds the resource's field and an asset's run config)."""
    return clearml_assets_home(home) / EXPORTS_DIR


def default_staging_root(export_root: str, home: str | os.PathLike | None = None) -> Path:
    """``<home>/staging/<hash of the URL>``: the local folder exports to the object-store ``export_root`` are
    built in before the upload (the one place it is derived; one folder per export root)."""
    digest = hashlib.sha256(str(export_root).rstrip("/").encode("utf-8")).hexdigest()[:16]
    return clearml_assets_home(home) / STAGING_DIR / digest


class ClearMLAccount(dg.Config):
    """One ClearML account: where it is and its key pair."""

    api_host: str = Field(default="", description="API server URL, e.g. https://api.clear.ml or "
                                                  "http://clearml.example.com:8008. Empty for the embedded local server.")
    web_host: str = Field(default="", description="Web app URL used for links, e.g. https://app.clear.ml.")
    files_host: str = Field(default="", description="Fileserver URL, e.g. https://files.clear.ml; downloads "
                                                    "from any other host are refused.")
    access_key: str = Field(default="", description="Access key; give it as EnvVar('CLEARML_KEY_<ACCOUNT>').")
    secret_key: str = Field(default="", description="Secret key; give it as EnvVar('CLEARML_SECRET_<ACCOUNT>'). "
                                                    "Never written to logs, metadata or errors.")
    credentials_file: str = Field(default="", description="A local server's credentials.json to read the key "
                                                          "pair from instead of access_key/secret_key.")
    embedded: bool = Field(default=False, description="Use the embedded local server of CLEARML_ASSETS_HOME "
                                                      "(started on demand); hosts and keys are then ignored.")
    max_connections: int = Field(default=8, ge=1, le=64, description="Most parallel API/file calls to this "
                                                                     "account (bounds the server's load).")
    request_deadline_seconds: float = Field(default=60.0, gt=0, le=3600, description="The most one API call may "
                                            "take, retries and its whole answer included: a server that stops "
                                            "answering or drips its answer fails then (downloads get time for "
                                            "their size on top).")
    max_response_mib: int = Field(default=128, ge=1, le=4096, description="The largest API answer read, in MiB; "
                                  "a larger one fails before it is held in memory.")
    config_file: str = Field(default="", description="A clearml.conf (from clearml-init) to take hosts, keys and "
                                                     "storage credentials from where the fields above are empty.")
    files_host_aliases: list[str] = Field(default_factory=list, description="Other spellings of the files host "
                                          "that stored URIs carry (e.g. http://localhost:8081 for "
                                          "http://127.0.0.1:8081, or a former host name); fetched from files_host.")
    s3_access_key: str = Field(default="", description="S3 access key for s3:// files; give it as "
                                                       "EnvVar('CLEARML_S3_KEY_<ACCOUNT>').")
    s3_secret_key: str = Field(default="", description="S3 secret key; give it as "
                                                       "EnvVar('CLEARML_S3_SECRET_<ACCOUNT>').")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint, e.g. http://127.0.0.1:8333 "
                                                         "(empty: AWS).")
    s3_region: str = Field(default="", description="S3 region, e.g. us-east-1.")
    gs_credentials_file: str = Field(default="", description="Google service account JSON for gs:// files.")
    azure_account_name: str = Field(default="", description="Azure storage account for azure:// files.")
    azure_account_key: str = Field(default="", description="Azure storage key; give it as "
                                                           "EnvVar('CLEARML_AZURE_KEY_<ACCOUNT>').")


_STORAGE_VARS = {"s3_access_key": "CLEARML_S3_KEY", "s3_secret_key": "CLEARML_S3_SECRET",
                 "s3_endpoint_url": "CLEARML_S3_ENDPOINT", "s3_region": "CLEARML_S3_REGION",
                 "gs_credentials_file": "CLEARML_GS_CREDENTIALS", "azure_account_name": "CLEARML_AZURE_ACCOUNT",
                 "azure_account_key": "CLEARML_AZURE_KEY", "files_host_aliases": "CLEARML_FILES_HOST_ALIASES",
                 "config_file": "CLEARML_CONFIG_FILE"}
SECRET_FIELDS = ("secret_key", "s3_secret_key", "azure_account_key")


def key_env_names(account: str) -> dict[str, str]:
    """The environment variables an account's settings come from, by field."""
    up = account.upper()
    storage = {f: f"{var}_{up}" for f, var in _STORAGE_VARS.items()}
    if account == ENV_ACCOUNT:
        return {"api_host": "CLEARML_API_HOST", "web_host": "CLEARML_WEB_HOST", "files_host": "CLEARML_FILES_HOST",
                "access_key": "CLEARML_API_ACCESS_KEY", "secret_key": "CLEARML_API_SECRET_KEY", **storage}
    return {"api_host": f"CLEARML_API_HOST_{up}", "web_host": f"CLEARML_WEB_HOST_{up}",
            "files_host": f"CLEARML_FILES_HOST_{up}", "access_key": f"CLEARML_KEY_{up}",
            "secret_key": f"CLEARML_SECRET_{up}", **storage}


def unknown_account_message(name: str, known: Iterable[str]) -> str:
    """What to say when account ``name`` is not configured: the variables that would make it, or, for a name
    that cannot be an account name (``Local``), that names are lower case, with the configured one it matches."""
    known = sorted(known)
    head = f"ClearML account '{name}' is not configured (known: {', '.join(known) or 'none'})."
    if not ACCOUNT_NAME.match(name):
        same = [k for k in known if k == name.lower()]
        return (f"{head} Account names are lower case: letters, digits and underscores, starting with a letter"
                + (f"; use '{same[0]}'." if same else
                   f" (the account made by CLEARML_KEY_{name.upper()} is '{name.lower()}')."
                   if ACCOUNT_NAME.match(name.lower()) else "."))
    var = key_env_names(name)
    return (f"{head} Set {var['access_key']} and {var['secret_key']} (and {var['api_host']} for a self-hosted "
            "server) in the environment or .env, or choose another account with run config "
            '{"resources": {"clearml": {"config": {"default_account": "<account>"}}}}.')


def accounts_from_env(env: Mapping[str, str]) -> dict[str, ClearMLAccount]:
    """Accounts whose access key variable is set in ``env``, plus ``local``.

    Keys become ``dagster.EnvVar`` so the Dagster UI shows the variable's name, never its value. A
    secret variable that is not set is left empty, so only runs that use that account fail (naming it)
    instead of every run failing at resource initialisation.
    """
    accounts: dict[str, ClearMLAccount] = {LOCAL_ACCOUNT: ClearMLAccount(embedded=True)}
    names = [m.group(1).lower() for m in map(_KEY_VAR.fullmatch, sorted(env)) if m and env[m.group(0)]]
    if env.get("CLEARML_API_ACCESS_KEY"):
        names.append(ENV_ACCOUNT)
    for name in dict.fromkeys(names):
        accounts[name] = _account_from_env(name, env)
    return accounts


def _account_from_env(name: str, env: Mapping[str, str]) -> ClearMLAccount:
    var = key_env_names(name)
    conf = env.get(var["config_file"], "")
    own_host = var["api_host"] in env or bool(conf)
    # a host left out stays empty when a clearml.conf or an own API host may supply or derive it
    fields: dict[str, Any] = dict(
        api_host=env.get(var["api_host"], "" if conf else SAAS_API_HOST),
        web_host=env.get(var["web_host"], "" if own_host else SAAS_WEB_HOST),
        files_host=env.get(var["files_host"], "" if own_host else SAAS_FILES_HOST),
        access_key=dg.EnvVar(var["access_key"]) if env.get(var["access_key"]) else "",
        secret_key=dg.EnvVar(var["secret_key"]) if env.get(var["secret_key"]) else "",
        config_file=conf,
        files_host_aliases=[a.strip() for a in env.get(var["files_host_aliases"], "").split(",") if a.strip()],
    )
    for field in ("s3_access_key", "s3_secret_key", "azure_account_key"):
        if env.get(var[field]):
            fields[field] = dg.EnvVar(var[field])
    for field in ("s3_endpoint_url", "s3_region", "gs_credentials_file", "azure_account_name"):
        fields[field] = env.get(var[field], "")
    return ClearMLAccount(**fields)


def storage_options_of(account: str, acc: ClearMLAccount) -> dict[str, dict[str, Any]]:
    """fsspec options per URL prefix from an account's storage fields (secrets resolved)."""
    from .clearml_conf import s3_options

    options: dict[str, dict[str, Any]] = {}
    if acc.s3_access_key or acc.s3_secret_key:
        options["s3://"] = s3_options(setting(account, "s3_access_key", acc.s3_access_key, required=True),
                                      setting(account, "s3_secret_key", acc.s3_secret_key, required=True),
                                      region=acc.s3_region, endpoint_url=acc.s3_endpoint_url)
    if acc.gs_credentials_file:
        options["gs://"] = {"token": acc.gs_credentials_file}
    if acc.azure_account_name or acc.azure_account_key:
        options["azure://"] = {"account_name": acc.azure_account_name,
                               "account_key": setting(account, "azure_account_key", acc.azure_account_key,
                                                      required=True)}
    return options


def setting(account: str, field: str, value: str, required: bool = False) -> str:
    """An account setting's value, resolving a ``dagster.EnvVar`` left unresolved by run config.

    Dagster resolves ``EnvVar`` fields at resource initialisation, except inside a nested dict when
    the run also has resource config (launchpad, ``--config-json``); then they arrive here as ``EnvVar``.

    Raises:
        ClearMLConfigError: The setting is empty or its environment variable is not set.
    """
    if isinstance(value, dg.EnvVar):
        name = value.env_var_name
        resolved = value.get_value()
        if not resolved:
            raise ClearMLConfigError(
                f"ClearML account '{account}': environment variable {name} ({field}) is not set. Set it in "
                "the environment or in .env in the folder Dagster starts from (see docs/accounts.md).")
        return resolved
    if not value and (required or field in ("api_host", "access_key", "secret_key")):
        raise ClearMLConfigError(
            f"ClearML account '{account}' has no {field}: set {key_env_names(account)[field]} in the environment "
            "or .env (or the account's fields in the resource config), see docs/accounts.md.")
    return value


def keys_from_credentials_file(account: str, path: str) -> tuple[str, str]:
    """The first key pair of a local server's ``credentials.json``."""
    try:
        first = json.loads(Path(path).read_text())[0]
        return first["access_key"], first["secret_key"]
    except (OSError, ValueError, LookupError, TypeError):
        raise ClearMLConfigError(
            f"ClearML account '{account}': cannot read a key pair from credentials file {path}. Is the "
            "local server's data directory right?") from None
