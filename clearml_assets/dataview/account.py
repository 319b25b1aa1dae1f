"""Which ClearML account a ``DataView`` reads: the SDK's own configuration first, as a training script expects.

``DataView()`` runs in the user's process, next to the ClearML SDK (the seed calls ``Task.init`` there), whose
credentials are process-global. So the view reads the account the SDK in this process would use, in the SDK's
order, and does not change the SDK's settings:

1. ``DataView(account="personal")`` (a name known to ``ClearMLResource.from_env()``) or
   ``DataView(clearml=resource, account=...)``: that account.
2. ClearML's own variables, ``CLEARML_API_ACCESS_KEY``/``CLEARML_API_SECRET_KEY`` with ``CLEARML_API_HOST``
   (``Task.set_credentials(...)`` sets them too, so credentials set in code count), over the SDK's
   configuration file: ``CLEARML_CONFIG_FILE``, else ``~/clearml.conf`` (``~/trains.conf``), when it holds a
   key pair. Hosts and keys not in the variables come from the file, as the SDK does.
3. Else ``CLEARML_ASSETS_DEFAULT_ACCOUNT``, else ``local``: the embedded server of ``$CLEARML_ASSETS_HOME``
   (started on demand).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..accounts import ENV_ACCOUNT, LOCAL_ACCOUNT
from ..clearml_conf import read_clearml_conf
from ..resource import ClearMLResource

SDK_CONFIG_FILES = ("~/trains.conf", "~/clearml.conf")  # the SDK's own list (clearml.backend_config.defs)


@dataclass(frozen=True)
class DataViewAccount:
    """The account a view reads and why (``source`` says which rule chose it)."""

    clearml: ClearMLResource
    name: str
    source: str

    def __repr__(self) -> str:
        return f"DataViewAccount(name={self.name!r}, source={self.source!r})"


def sdk_config_file(environ: Mapping[str, str]) -> str:
    """The configuration file the SDK reads: ``CLEARML_CONFIG_FILE`` if set (when it exists), else the first of
    ``~/trains.conf``, ``~/clearml.conf`` that exists; "" for none."""
    chosen = environ.get("CLEARML_CONFIG_FILE") or environ.get("TRAINS_CONFIG_FILE")
    if chosen:
        path = Path(os.path.expandvars(chosen)).expanduser()
        return str(path) if path.is_file() else ""
    for candidate in SDK_CONFIG_FILES:
        path = Path(candidate).expanduser()
        if path.is_file():
            return str(path)
    return ""


def _sdk_configured(environ: Mapping[str, str], config_file: str) -> bool:
    if environ.get("CLEARML_API_ACCESS_KEY"):
        return True
    return bool(config_file) and bool(read_clearml_conf(config_file, ENV_ACCOUNT).access_key)


def dataview_account(account: str | None = None, clearml: ClearMLResource | None = None,
                     environ: Mapping[str, str] | None = None) -> DataViewAccount:
    """The account a ``DataView`` reads (see the module docstring for the order).

    Raises:
        ClearMLConfigError: A named account is not configured, or the SDK's configuration file is unreadable.
    """
    env = dict(os.environ if environ is None else environ)
    if clearml is not None:
        return DataViewAccount(clearml, account or clearml.default_account, "the resource given")
    config_file = sdk_config_file(env)
    if config_file:
        env[f"CLEARML_CONFIG_FILE_{ENV_ACCOUNT.upper()}"] = config_file
    resource = ClearMLResource.from_env(env)
    if account:
        resource.choose_account(account)  # unknown: a clear error naming the variables to set
        return DataViewAccount(resource, account, "the account argument")
    if _sdk_configured(env, config_file):
        return DataViewAccount(resource, ENV_ACCOUNT, "the ClearML SDK's configuration of this process")
    fallback = env.get("CLEARML_ASSETS_DEFAULT_ACCOUNT") or LOCAL_ACCOUNT
    resource.choose_account(fallback)
    source = "CLEARML_ASSETS_DEFAULT_ACCOUNT" if fallback != LOCAL_ACCOUNT else "the embedded local server"
    return DataViewAccount(resource, fallback, source)


__all__ = ["DataViewAccount", "dataview_account", "sdk_config_file"]
