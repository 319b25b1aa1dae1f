"""ClearML account settings and where they come from (environment variables, ``.env``).

Environment variables (Dagster loads ``.env`` from the folder it starts in):

* ``CLEARML_KEY_<NAME>`` / ``CLEARML_SECRET_<NAME>`` make account ``<name>`` (the seed's
  ``personal`` and ``original``); hosts ``CLEARML_API_HOST_<NAME>``, ``CLEARML_WEB_HOST_<NAME>``,
  ``CLEARML_FILES_HOST_<NAME>``, default ClearML SaaS.
* ClearML's own ``CLEARML_API_ACCESS_KEY`` / ``CLEARML_API_SECRET_KEY`` with ``CLEARML_API_HOST``,
  ``CLEARML_WEB_HOST``, ``CLEARML_FILES_HOST`` make account ``default``.
* Account ``local`` is always there: the embedded server of ``$CLEARML_ASSETS_HOME``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

import dagster as dg
from pydantic import Field

from .errors import ClearMLConfigError

LOCAL_ACCOUNT = "local"
ENV_ACCOUNT = "default"
SAAS_API_HOST = "https://api.clear.ml"
SAAS_WEB_HOST = "https://app.clear.ml"
SAAS_FILES_HOST = "https://files.clear.ml"
ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KEY_VAR = re.compile(r"CLEARML_KEY_([A-Z][A-Z0-9_]*)")


def clearml_assets_home() -> Path:
    """``$CLEARML_ASSETS_HOME``, default ``~/.clearml_assets``: the local server, caches, exports."""
    return Path(os.environ.get("CLEARML_ASSETS_HOME", "~/.clearml_assets")).expanduser()


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


def key_env_names(account: str) -> dict[str, str]:
    """The environment variables an account's settings come from, by field."""
    if account == ENV_ACCOUNT:
        return {"api_host": "CLEARML_API_HOST", "web_host": "CLEARML_WEB_HOST", "files_host": "CLEARML_FILES_HOST",
                "access_key": "CLEARML_API_ACCESS_KEY", "secret_key": "CLEARML_API_SECRET_KEY"}
    up = account.upper()
    return {"api_host": f"CLEARML_API_HOST_{up}", "web_host": f"CLEARML_WEB_HOST_{up}",
            "files_host": f"CLEARML_FILES_HOST_{up}", "access_key": f"CLEARML_KEY_{up}",
            "secret_key": f"CLEARML_SECRET_{up}"}


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
    for name in names:
        var = key_env_names(name)
        own_host = var["api_host"] in env
        accounts[name] = ClearMLAccount(
            api_host=env.get(var["api_host"], SAAS_API_HOST),
            web_host=env.get(var["web_host"], "" if own_host else SAAS_WEB_HOST),
            files_host=env.get(var["files_host"], "" if own_host else SAAS_FILES_HOST),
            access_key=dg.EnvVar(var["access_key"]),
            secret_key=dg.EnvVar(var["secret_key"]) if env.get(var["secret_key"]) else "",
        )
    return accounts


def setting(account: str, field: str, value: str) -> str:
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
    if not value and field in ("api_host", "access_key", "secret_key"):
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
