"""``ClearMLResource``: named ClearML accounts for every asset, sensor and schedule.

Each account has its hosts and a key pair; secrets come from environment variables (``dagster.EnvVar``,
so the Dagster UI shows the variable's name, never its value). The account ``local`` is the embedded
ClearML-compatible server, started on demand. Reads go through a per-account :class:`ClearMLClient`;
SDK writes run in a child process configured by :meth:`ClearMLResource.sdk_env` for one account only,
because the SDK's credentials are process-global.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from .accounts import (
    ACCOUNT_NAME, LOCAL_ACCOUNT, SAAS_API_HOST, SAAS_FILES_HOST, SAAS_WEB_HOST, ClearMLAccount, accounts_from_env,
    clearml_assets_home, default_export_root, default_staging_root, keys_from_credentials_file,
    setting, storage_options_of, unknown_account_message,
)
from .clearml_conf import ClearMLConf, read_clearml_conf
from .client import ClearMLClient, derive_files_host, loopback_aliases
from .errors import ClearMLConfigError
from .sdk_process import fastfail_config_file

__all__ = ["AccountChoice", "ClearMLAccount", "ClearMLResource", "LOCAL_ACCOUNT", "SAAS_API_HOST",
           "SAAS_FILES_HOST", "SAAS_WEB_HOST", "clearml_assets_home"]

ACCOUNT_SOURCES = ("asset config", "definitions", "resource default_account")


@dataclass(frozen=True)
class AccountChoice:
    """The account an asset run uses and which setting chose it (recorded in the run's metadata).

    One rule everywhere: the asset's run config ``account``, else the account given when the
    definitions were built (e.g. ``build_dataset_defs(account=...)``), else the resource's
    ``default_account``.
    """

    name: str
    source: str

    def metadata(self) -> dict[str, str]:
        """``clearml_account`` and ``clearml_account_source`` for a materialization's metadata."""
        return {"clearml_account": self.name, "clearml_account_source": self.source}


class ClearMLResource(dg.ConfigurableResource):
    """Named ClearML accounts; ``default_account`` is the one used when an asset names none.

    Examples:
        ``ClearMLResource.from_env()`` builds the accounts found in the environment (see
        docs/accounts.md). Choose the account per run with run config
        ``{"resources": {"clearml": {"config": {"default_account": "original"}}}}``.
    """

    accounts: dict[str, ClearMLAccount] = Field(
        default_factory=lambda: {LOCAL_ACCOUNT: ClearMLAccount(embedded=True)},
        description="Accounts by name (lowercase letters, digits, underscores), e.g. personal, original, local.")
    default_account: str = Field(default=LOCAL_ACCOUNT, description="Account used when an asset or run "
                                                                     "does not name one.")
    home: str = Field(default="", description="Folder for the embedded server, SDK caches, staging and exports; "
                                              "empty = $CLEARML_ASSETS_HOME or ~/.clearml_assets.")
    export_root: str = Field(default="", description="Folder archives are written under; empty = <home>/exports.")
    check_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Bound on the connection "
                                                                                 "check of an account before use.")
    _clients: dict[str, tuple[ClearMLClient, dict[str, Any]]] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _home: Path | None = PrivateAttr(default=None)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: Any) -> "ClearMLResource":
        """Accounts found in the environment, plus ``local`` (see :mod:`clearml_assets.accounts`).

        * ``CLEARML_KEY_<NAME>`` / ``CLEARML_SECRET_<NAME>`` make account ``<name>`` (e.g. ``personal``,
          ``original``), hosts from ``CLEARML_API_HOST_<NAME>``, ``CLEARML_WEB_HOST_<NAME>``,
          ``CLEARML_FILES_HOST_<NAME>`` (default: ClearML SaaS).
        * ClearML's own ``CLEARML_API_ACCESS_KEY`` / ``CLEARML_API_SECRET_KEY`` (+ ``CLEARML_API_HOST``,
          ``CLEARML_WEB_HOST``, ``CLEARML_FILES_HOST``) make account ``default``.
        * ``CLEARML_CONFIG_FILE_<NAME>`` (a ``clearml.conf``) makes account ``<name>`` from the file: hosts,
          keys and storage credentials; the variables above override it.
        * ``CLEARML_S3_KEY_<NAME>`` ... (see docs/accounts.md): the account's object storage credentials;
          ``CLEARML_FILES_HOST_ALIASES_<NAME>``: other spellings of its files host.
        * ``CLEARML_ASSETS_DEFAULT_ACCOUNT`` picks the default account (else ``local``).

        Args:
            environ: Variables to read instead of ``os.environ``.
            **kwargs: Other fields of the resource (``default_account``, ``home``, ...).
        """
        env = os.environ if environ is None else environ
        kwargs.setdefault("default_account", env.get("CLEARML_ASSETS_DEFAULT_ACCOUNT") or LOCAL_ACCOUNT)
        return cls(accounts=accounts_from_env(env), **kwargs)

    @classmethod
    def for_local_server(cls, info: Any, home: str = "", account: str = LOCAL_ACCOUNT, **kwargs: Any
                         ) -> "ClearMLResource":
        """One account pointing at a running local server (``LocalServerInfo``); for tests and scripts.

        The keys are read from the server's ``credentials.json`` when it holds them, so they do not
        appear in the resource's config (which the Dagster UI shows).
        """
        acc = ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                             access_key=info.access_key, secret_key=info.secret_key)
        creds = Path(info.data_dir) / "credentials.json"
        try:
            if keys_from_credentials_file(account, str(creds)) == (info.access_key, info.secret_key):
                acc = ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                                     credentials_file=str(creds))
        except ClearMLConfigError:
            pass  # a server given explicit keys has no credentials file: keep them in the config
        return cls(accounts={account: acc}, default_account=account, home=home, **kwargs)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Validate the account names, the default account and the folders at resource initialisation
        (no network)."""
        self.validate_accounts()
        self.validate_folders()

    def validate_folders(self) -> None:
        """Check that the home and the export root are folders (or can become folders).

        Raises:
            ClearMLConfigError: Naming the setting whose path is a file.
        """
        for field, path in (("home", self.home_dir()), ("export_root", self.export_root_dir())):
            if path.exists() and not path.is_dir():
                raise ClearMLConfigError(
                    f"ClearMLResource {field} {str(path)!r} is a file, not a folder: set the resource's {field} "
                    f"(or $CLEARML_ASSETS_HOME) to a folder.", metadata={"field": field})

    def validate_accounts(self) -> None:
        """Check account names and that ``default_account`` is one of them.

        Raises:
            ClearMLConfigError: A bad account name or an unknown default account.
        """
        for name in self.accounts:
            if not ACCOUNT_NAME.match(name):
                raise ClearMLConfigError(
                    f"ClearML account name '{name}' is invalid: use lowercase letters, digits and underscores, "
                    "starting with a letter (e.g. personal, original, team_a).")
        if self.default_account not in self.accounts:
            raise self._unknown(self.default_account)

    def _unknown(self, name: str) -> ClearMLConfigError:
        return ClearMLConfigError(unknown_account_message(name, self.accounts))

    # -- accounts -----------------------------------------------------------------------------
    def account_names(self) -> list[str]:
        """The configured account names."""
        return list(self.accounts)

    def home_dir(self) -> Path:
        """The home folder (local server, SDK caches, staging, demo data), resolved once: the ``home``
        field, else ``$CLEARML_ASSETS_HOME``, else ``~/.clearml_assets``. Every asset uses this."""
        if self._home is None:
            self._home = clearml_assets_home(self.home or None)
        return self._home

    def export_root_dir(self, override: str | None = None) -> Path:
        """Where archives go: ``override`` (an asset's run config) if given, else the ``export_root``
        field, else ``<home>/exports``."""
        chosen = override or self.export_root
        return Path(chosen).expanduser().absolute() if chosen else default_export_root(self.home_dir())

    def staging_dir(self, export_root: str) -> Path:
        """The local folder exports to the object-store ``export_root`` are built in before the upload:
        ``<home>/staging/<hash of the URL>`` (the resource's home, see :meth:`home_dir`)."""
        return default_staging_root(export_root, self.home_dir())

    def choose_account(self, configured: str | None = None, built: str | None = None) -> AccountChoice:
        """The one account rule (see :class:`AccountChoice`).

        Args:
            configured: The asset's run config ``account`` (empty = not set).
            built: The account given when the definitions were built (None = not set).

        Raises:
            ClearMLConfigError: The chosen account is not configured.
        """
        if configured:
            choice = AccountChoice(configured, ACCOUNT_SOURCES[0])
        elif built:
            choice = AccountChoice(built, ACCOUNT_SOURCES[1])
        else:
            choice = AccountChoice(self.default_account, ACCOUNT_SOURCES[2])
        if choice.name not in self.accounts:
            raise self._unknown(choice.name)
        return choice

    def resolve(self, account: str | None = None) -> tuple[str, dict[str, Any]]:
        """The account's name and its hosts, keys, files-host aliases and storage options (the embedded
        server is started if needed).

        Each setting comes from the account's field (an environment variable), else its ``clearml.conf``;
        a files host left out is derived from the API host as the SDK does.

        Raises:
            ClearMLConfigError: Unknown account, a missing host/key, an unset environment variable, or an
                unreadable clearml.conf.
        """
        name = account or self.default_account
        if name not in self.accounts:
            raise self._unknown(name)
        acc = self.accounts[name]
        if acc.embedded:
            from .local_server.ensure import ensure_local_server

            info = ensure_local_server(self.home_dir())
            return name, {"api_host": info.api_host, "web_host": info.web_host, "files_host": info.files_host,
                          "access_key": info.access_key, "secret_key": info.secret_key,
                          "files_host_aliases": loopback_aliases(info.files_host), "storage_options": {}}
        conf = read_clearml_conf(acc.config_file, name) if acc.config_file else ClearMLConf()
        where: dict[str, Any] = {f: self._setting(name, acc, conf, f)
                                 for f in ("api_host", "web_host", "files_host")}
        if acc.credentials_file:
            where["access_key"], where["secret_key"] = keys_from_credentials_file(name, acc.credentials_file)
        else:
            where.update({f: self._setting(name, acc, conf, f) for f in ("access_key", "secret_key")})
        files = where["files_host"] or derive_files_host(where["api_host"], where["web_host"] or None)
        where["files_host_aliases"] = tuple(dict.fromkeys(
            [*acc.files_host_aliases, *conf.files_host_aliases, *loopback_aliases(files)]))
        where["storage_options"] = {**conf.storage_options, **storage_options_of(name, acc)}
        return name, where

    @staticmethod
    def _setting(name: str, acc: ClearMLAccount, conf: ClearMLConf, field: str) -> str:
        value = getattr(acc, field)
        if value or isinstance(value, dg.EnvVar) or not acc.config_file:
            return setting(name, field, value)
        from_conf = getattr(conf, field)
        if field == "api_host" and not from_conf:
            return SAAS_API_HOST  # the SDK's default when clearml.conf names no server
        return from_conf or setting(name, field, "")

    def client(self, account: str | None = None) -> ClearMLClient:
        """A checked :class:`ClearMLClient` of the account (cached), failing within 10 s if unusable.

        Raises:
            ClearMLConfigError: The account is not configured or an environment variable is missing.
            ClearMLConnectionError: Unreachable, 5xx, wrong keys, or not a ClearML server.
        """
        return self._checked(account)[0]

    def _checked(self, account: str | None) -> tuple[ClearMLClient, dict[str, Any]]:
        name = account or self.default_account
        with self._lock:
            cached = self._clients.get(name)
        if cached is not None:
            return cached
        name, where = self.resolve(name)
        client = ClearMLClient(where["api_host"], where["access_key"], where["secret_key"], account=name,
                               files_host=where["files_host"] or None, web_host=where["web_host"] or None,
                               max_connections=self.accounts[name].max_connections,
                               deadline_seconds=self.accounts[name].request_deadline_seconds,
                               max_response_bytes=self.accounts[name].max_response_mib * 1024 * 1024,
                               files_host_aliases=where["files_host_aliases"],
                               storage_options=where["storage_options"])
        client.session.check(self.check_timeout_seconds)
        with self._lock:
            return self._clients.setdefault(name, (client, where))

    def sdk_env(self, account: str | None = None) -> dict[str, str]:
        """Environment for a child process that uses the ClearML SDK with this account only.

        The account is checked first (fail fast). The child gets a bounded-retry clearml.conf
        (``CLEARML_CONFIG_FILE``), no task reuse, and an SDK cache folder of its own per account
        (``CLEARML_CACHE_DIR``). ``HOME`` is left alone so other libraries keep their caches.
        Pass it to :func:`clearml_assets.sdk_process.run_in_sdk_process` or
        :func:`clearml_assets.tasks.configure_sdk_process`.
        """
        client, where = self._checked(account)
        sdk_home = self.home_dir() / "sdk" / client.account
        (sdk_home / "cache").mkdir(parents=True, exist_ok=True)
        return {
            "CLEARML_API_HOST": where["api_host"],
            "CLEARML_WEB_HOST": client.web_host,
            "CLEARML_FILES_HOST": client.files_host or "",
            "CLEARML_API_ACCESS_KEY": where["access_key"],
            "CLEARML_API_SECRET_KEY": where["secret_key"],
            "CLEARML_CONFIG_FILE": str(fastfail_config_file(sdk_home)),
            "CLEARML_CACHE_DIR": str(sdk_home / "cache"),
            "CLEARML_TASK_NO_REUSE": "1",
            "CLEARML_LOG_LEVEL": os.environ.get("CLEARML_LOG_LEVEL", "WARNING"),
            "CLEARML_ASSETS_ACCOUNT": client.account,
            "CLEARML_ASSETS_HOME": str(self.home_dir()),
        }

    def web_url(self, kind: str, obj_id: str, project_id: str | None = None, account: str | None = None) -> str:
        """A ClearML web page (task, project, dataset, model) of the account."""
        return self.client(account).web_url(kind, obj_id, project_id)
