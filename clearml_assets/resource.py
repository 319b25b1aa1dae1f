"""``ClearMLResource``: named ClearML accounts for every asset, sensor and schedule.

Each account has its hosts and a key pair; secrets come from environment variables (``dagster.EnvVar``,
so the Dagster UI shows the variable's name, never its value). The account ``local`` is the embedded
ClearML-compatible server, started on demand. Reads go through a per-account :class:`ClearMLClient`;
SDK writes run in a child process configured by :meth:`ClearMLResource.sdk_env` for one account only,
because the SDK's credentials are process-global.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from .client import ClearMLClient
from .errors import ClearMLConfigError
from .sdk_process import fastfail_config_file

LOCAL_ACCOUNT = "local"
SAAS_API_HOST = "https://api.clear.ml"
SAAS_WEB_HOST = "https://app.clear.ml"
SAAS_FILES_HOST = "https://files.clear.ml"
_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
    embedded: bool = Field(default=False, description="Use the embedded local server of CLEARML_ASSETS_HOME "
                                                      "(started on demand); hosts and keys are then ignored.")
    max_connections: int = Field(default=8, ge=1, le=64, description="Most parallel API/file calls to this "
                                                                     "account (bounds the server's load).")


class ClearMLResource(dg.ConfigurableResource):
    """Named ClearML accounts; ``default_account`` is the one used when an asset names none.

    Examples:
        ``ClearMLResource.from_env()`` builds the accounts found in the environment (see README,
        section Accounts). Choose the account per run with run config
        ``{"resources": {"clearml": {"config": {"default_account": "original"}}}}``.
    """

    accounts: dict[str, ClearMLAccount] = Field(
        default_factory=lambda: {LOCAL_ACCOUNT: ClearMLAccount(embedded=True)},
        description="Accounts by name (lowercase letters, digits, underscores), e.g. personal, original, local.")
    default_account: str = Field(default=LOCAL_ACCOUNT, description="Account used when an asset or run "
                                                                     "does not name one.")
    home: str = Field(default="", description="Folder for the embedded server, SDK caches and exports; empty "
                                              "= $CLEARML_ASSETS_HOME or ~/.clearml_assets.")
    check_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Bound on the connection "
                                                                                 "check of an account before use.")
    _clients: dict[str, ClearMLClient] = PrivateAttr(default_factory=dict)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: Any) -> "ClearMLResource":
        """Accounts found in the environment, plus ``local``.

        * ``CLEARML_KEY_<NAME>`` / ``CLEARML_SECRET_<NAME>`` make account ``<name>`` (e.g. ``personal``,
          ``original``), hosts from ``CLEARML_API_HOST_<NAME>``, ``CLEARML_WEB_HOST_<NAME>``,
          ``CLEARML_FILES_HOST_<NAME>`` (default: ClearML SaaS).
        * ClearML's own ``CLEARML_API_ACCESS_KEY`` / ``CLEARML_API_SECRET_KEY`` (+ ``CLEARML_API_HOST``,
          ``CLEARML_WEB_HOST``, ``CLEARML_FILES_HOST``) make account ``default``.
        * ``CLEARML_ASSETS_DEFAULT_ACCOUNT`` picks the default account (else ``local``).
        """
        env = os.environ if environ is None else environ
        accounts: dict[str, ClearMLAccount] = {LOCAL_ACCOUNT: ClearMLAccount(embedded=True)}
        for var in sorted(env):
            match = re.fullmatch(r"CLEARML_KEY_([A-Z][A-Z0-9_]*)", var)
            if not match:
                continue
            suffix = match.group(1)
            accounts[suffix.lower()] = ClearMLAccount(
                api_host=env.get(f"CLEARML_API_HOST_{suffix}", SAAS_API_HOST),
                web_host=env.get(f"CLEARML_WEB_HOST_{suffix}", SAAS_WEB_HOST if f"CLEARML_API_HOST_{suffix}"
                                 not in env else ""),
                files_host=env.get(f"CLEARML_FILES_HOST_{suffix}", SAAS_FILES_HOST if f"CLEARML_API_HOST_{suffix}"
                                   not in env else ""),
                access_key=dg.EnvVar(f"CLEARML_KEY_{suffix}"),
                # an unset secret must not break every run at resource init: resolve() names it instead
                secret_key=dg.EnvVar(f"CLEARML_SECRET_{suffix}") if env.get(f"CLEARML_SECRET_{suffix}") else "",
            )
        if env.get("CLEARML_API_ACCESS_KEY"):
            accounts["default"] = ClearMLAccount(
                api_host=env.get("CLEARML_API_HOST", SAAS_API_HOST),
                web_host=env.get("CLEARML_WEB_HOST", ""),
                files_host=env.get("CLEARML_FILES_HOST", ""),
                access_key=dg.EnvVar("CLEARML_API_ACCESS_KEY"),
                secret_key=dg.EnvVar("CLEARML_API_SECRET_KEY") if env.get("CLEARML_API_SECRET_KEY") else "",
            )
        kwargs.setdefault("default_account", env.get("CLEARML_ASSETS_DEFAULT_ACCOUNT", LOCAL_ACCOUNT))
        return cls(accounts=accounts, **kwargs)

    @classmethod
    def for_local_server(cls, info: Any, home: str = "", account: str = LOCAL_ACCOUNT, **kwargs: Any
                         ) -> "ClearMLResource":
        """One account pointing at a running local server (``LocalServerInfo``); for tests and scripts."""
        acc = ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                             access_key=info.access_key, secret_key=info.secret_key)
        return cls(accounts={account: acc}, default_account=account, home=home, **kwargs)

    # -- accounts -----------------------------------------------------------------------------
    def account_names(self) -> list[str]:
        """The configured account names."""
        return list(self.accounts)

    def home_dir(self) -> Path:
        """The resource's home folder (local server, SDK caches, exports)."""
        return Path(self.home).expanduser() if self.home else clearml_assets_home()

    def resolve(self, account: str | None = None) -> tuple[str, dict[str, str]]:
        """The account's name and its hosts and keys (embedded server started if needed).

        Raises:
            ClearMLConfigError: Unknown account, or a missing host/key.
        """
        name = account or self.default_account
        if name not in self.accounts:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ClearMLConfigError(
                f"ClearML account '{name}' is not configured (known: {known}). Set CLEARML_KEY_{name.upper()} "
                f"and CLEARML_SECRET_{name.upper()} (and CLEARML_API_HOST_{name.upper()} for a self-hosted "
                "server) in the environment or .env, or pick another account with "
                "resources.clearml.config.default_account.")
        acc = self.accounts[name]
        if acc.embedded:
            from .local_server.ensure import ensure_local_server

            info = ensure_local_server(self.home_dir())
            return name, {"api_host": info.api_host, "web_host": info.web_host, "files_host": info.files_host,
                          "access_key": info.access_key, "secret_key": info.secret_key}
        missing = [f for f in ("api_host", "access_key", "secret_key") if not getattr(acc, f)]
        if missing:
            names = {"api_host": f"CLEARML_API_HOST_{name.upper()}", "access_key": f"CLEARML_KEY_{name.upper()}",
                     "secret_key": f"CLEARML_SECRET_{name.upper()}"}
            if name == "default":
                names = {"api_host": "CLEARML_API_HOST", "access_key": "CLEARML_API_ACCESS_KEY",
                         "secret_key": "CLEARML_API_SECRET_KEY"}
            raise ClearMLConfigError(
                f"ClearML account '{name}' has no {', '.join(missing)}: set "
                f"{', '.join(names[m] for m in missing)} in the environment or .env (or the account's fields "
                "in the resource config).")
        if not _ACCOUNT_NAME.match(name):
            raise ClearMLConfigError(f"ClearML account name '{name}' must be lowercase letters, digits and "
                                     "underscores, starting with a letter.")
        return name, {"api_host": acc.api_host, "web_host": acc.web_host, "files_host": acc.files_host,
                      "access_key": acc.access_key, "secret_key": acc.secret_key}

    def client(self, account: str | None = None) -> ClearMLClient:
        """A checked :class:`ClearMLClient` of the account (cached), failing within 10 s if unusable.

        Raises:
            ClearMLConfigError: The account is not configured.
            ClearMLConnectionError: Unreachable, 5xx, wrong keys, or not a ClearML server.
        """
        name = account or self.default_account
        cached = self._clients.get(name)
        if cached is not None:
            return cached
        name, where = self.resolve(name)
        acc = self.accounts[name]
        client = ClearMLClient(where["api_host"], where["access_key"], where["secret_key"], account=name,
                               files_host=where["files_host"] or None, web_host=where["web_host"] or None,
                               max_connections=acc.max_connections)
        client.check(self.check_timeout_seconds)
        self._clients[name] = client
        return client

    def sdk_env(self, account: str | None = None) -> dict[str, str]:
        """Environment for a child process that uses the ClearML SDK with this account only.

        The account is checked first (fail fast). The child gets a bounded-retry clearml.conf, no task
        reuse, and its own SDK cache folder per account.
        """
        client = self.client(account)
        name, where = self.resolve(client.account)
        sdk_home = self.home_dir() / "sdk" / name
        sdk_home.mkdir(parents=True, exist_ok=True)
        return {
            "CLEARML_API_HOST": where["api_host"],
            "CLEARML_WEB_HOST": client.web_host,
            "CLEARML_FILES_HOST": where["files_host"] or "",
            "CLEARML_API_ACCESS_KEY": where["access_key"],
            "CLEARML_API_SECRET_KEY": where["secret_key"],
            "CLEARML_CONFIG_FILE": str(fastfail_config_file(sdk_home)),
            "CLEARML_CACHE_DIR": str(sdk_home / "cache"),
            "CLEARML_TASK_NO_REUSE": "1",
            "CLEARML_LOG_LEVEL": os.environ.get("CLEARML_LOG_LEVEL", "WARNING"),
        }

    def web_url(self, kind: str, obj_id: str, project_id: str | None = None, account: str | None = None) -> str:
        """A ClearML web page (task, project, dataset, model) of the account."""
        return self.client(account).web_url(kind, obj_id, project_id)
