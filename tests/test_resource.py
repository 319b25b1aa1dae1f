"""ClearMLResource: config validation, accounts from the environment, per-run account choice, fail fast
with no secret in errors/logs/UI config, the embedded local server on demand, .env through the dagster CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.client import ClearMLClient
from clearml_assets.errors import ClearMLConfigError, ClearMLConnectionError
from clearml_assets.local_server import LocalServer, free_port
from clearml_assets.local_server.ensure import ensure_local_server, running_local_server
from clearml_assets.resource import ClearMLAccount, ClearMLResource
from clearml_assets.storage import client_storage_options
from conftest import stop_embedded_server
from test_client import broken_server

BOUND_SECONDS = 10.0
SECRET = "resource-test-secret-value-7781"


def timed_failure(resource: ClearMLResource, account: str | None, label: str) -> tuple[Exception, float]:
    started = time.monotonic()
    with pytest.raises((ClearMLConnectionError, ClearMLConfigError)) as info:
        resource.client(account)
    elapsed = time.monotonic() - started
    print(f"\ntime-to-error[resource.client, {label}]: {elapsed:.2f}s: {info.value}")
    assert SECRET not in str(info.value)
    return info.value, elapsed


def probe_asset():
    @dg.asset
    def probe(context, clearml: ClearMLResource) -> str:
        client = clearml.client()
        project = client.session.call("projects.create", name=f"probe-{client.account}")["id"]
        context.add_output_metadata({"account": client.account,
                                     "url": dg.MetadataValue.url(client.web_url("project", project))})
        return client.account

    return probe


def failure_text(result) -> str:
    """Every failure message of a run, with the causes Dagster wraps them in."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


# -- configuration ----------------------------------------------------------------------------------
def test_from_env_reads_seed_and_clearml_names():
    env = {"CLEARML_KEY_PERSONAL": "AKP", "CLEARML_SECRET_PERSONAL": "SKP",
           "CLEARML_KEY_ORIGINAL": "AKO", "CLEARML_SECRET_ORIGINAL": "SKO",
           "CLEARML_API_HOST_ORIGINAL": "http://clearml.example.com:8008",
           "CLEARML_FILES_HOST_ORIGINAL": "http://clearml.example.com:8081",
           "CLEARML_KEY_EMPTY": "",
           "CLEARML_API_ACCESS_KEY": "AKD", "CLEARML_API_SECRET_KEY": "SKD",
           "CLEARML_API_HOST": "http://self.example.com:8008",
           "CLEARML_ASSETS_DEFAULT_ACCOUNT": "original"}
    resource = ClearMLResource.from_env(env)
    assert sorted(resource.account_names()) == ["default", "local", "original", "personal"]
    assert resource.default_account == "original"
    personal, original, default = (resource.accounts[n] for n in ("personal", "original", "default"))
    assert (personal.api_host, personal.web_host, personal.files_host) == (
        "https://api.clear.ml", "https://app.clear.ml", "https://files.clear.ml")
    assert (original.api_host, original.web_host, original.files_host) == (
        "http://clearml.example.com:8008", "", "http://clearml.example.com:8081")
    assert default.api_host == "http://self.example.com:8008"
    assert isinstance(personal.access_key, dg.EnvVar) and personal.access_key.env_var_name == "CLEARML_KEY_PERSONAL"
    assert default.secret_key.env_var_name == "CLEARML_API_SECRET_KEY"
    assert resource.accounts["local"].embedded
    assert ClearMLResource.from_env({}).account_names() == ["local"]
    assert ClearMLResource.from_env({}).default_account == "local"


def test_ui_config_shows_variable_names_never_values(monkeypatch):
    monkeypatch.setenv("CLEARML_KEY_PERSONAL", "AK-PERSONAL-123")
    monkeypatch.setenv("CLEARML_SECRET_PERSONAL", SECRET)
    resource = ClearMLResource.from_env()
    shown = json.dumps(resource.get_resource_definition().config_schema.as_field().default_value)
    assert '{"env": "CLEARML_SECRET_PERSONAL"}' in shown and '{"env": "CLEARML_KEY_PERSONAL"}' in shown
    assert SECRET not in shown and "AK-PERSONAL-123" not in shown


def test_for_local_server_keeps_keys_out_of_the_config(clearml_server: LocalServer):
    resource = ClearMLResource.for_local_server(clearml_server.info, account="mine")
    shown = json.dumps(resource.get_resource_definition().config_schema.as_field().default_value)
    assert clearml_server.info.secret_key not in shown and "credentials.json" in shown
    assert resource.client().session.call("projects.get_all", page=0, page_size=1)["projects"] == []


def test_invalid_configuration_is_rejected_at_resource_init():
    with pytest.raises(Exception, match="max_connections"):
        ClearMLAccount(api_host="http://x", max_connections=0)
    with pytest.raises(Exception, match="check_timeout_seconds"):
        ClearMLResource(check_timeout_seconds=0)

    unknown_default = ClearMLResource(default_account="personal")
    result = dg.materialize([probe_asset()], resources={"clearml": unknown_default}, raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "ClearML account 'personal' is not configured (known: local)" in text and "CLEARML_KEY_PERSONAL" in text
    # A name written with capitals: names are lower case, and the configured one it means is named (no placeholder).
    with pytest.raises(ClearMLConfigError) as caught:
        ClearMLResource().choose_account("Local")
    assert "Account names are lower case" in str(caught.value) and "use 'local'" in str(caught.value)
    assert "CLEARML_KEY_NAME" not in str(caught.value)
    with pytest.raises(ClearMLConfigError, match=r"the account made by CLEARML_KEY_PERSONAL is 'personal'"):
        ClearMLResource().choose_account("Personal")

    bad_name = ClearMLResource(accounts={"Team-A": ClearMLAccount(api_host="http://x", access_key="a",
                                                                  secret_key="s")}, default_account="Team-A")
    result = dg.materialize([probe_asset()], resources={"clearml": bad_name}, raise_on_error=False)
    assert not result.success
    assert "account name 'Team-A' is invalid" in failure_text(result)

    with pytest.raises(dg.DagsterInvalidConfigError, match="default_account"):
        dg.materialize([probe_asset()], resources={"clearml": ClearMLResource()},
                       run_config={"resources": {"clearml": {"config": {"default_account": 7}}}})


# -- choosing the account per run ---------------------------------------------------------------------
def _two_servers(tmp_path: Path):
    a = LocalServer(tmp_path / "a", api_port=0, files_port=0).start()
    b = LocalServer(tmp_path / "b", api_port=0, files_port=0).start()
    return a, b


def _set_account_env(monkeypatch, name: str, info) -> None:
    up = name.upper()
    monkeypatch.setenv(f"CLEARML_KEY_{up}", info.access_key)
    monkeypatch.setenv(f"CLEARML_SECRET_{up}", info.secret_key)
    monkeypatch.setenv(f"CLEARML_API_HOST_{up}", info.api_host)
    monkeypatch.setenv(f"CLEARML_FILES_HOST_{up}", info.files_host)
    monkeypatch.setenv(f"CLEARML_WEB_HOST_{up}", info.web_host)


def _project_names(info) -> list[str]:
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key)
    return [p["name"] for p in client.session.call("projects.get_all", only_fields=["name"])["projects"]]


def test_run_config_chooses_the_account(monkeypatch, tmp_path: Path):
    a, b = _two_servers(tmp_path)
    try:
        _set_account_env(monkeypatch, "personal", a.info)
        _set_account_env(monkeypatch, "original", b.info)
        monkeypatch.setenv("CLEARML_ASSETS_DEFAULT_ACCOUNT", "personal")
        resource = ClearMLResource.from_env(home=str(tmp_path / "home"))

        plain = dg.materialize([probe_asset()], resources={"clearml": resource})
        assert plain.output_for_node("probe") == "personal"
        # with resource run config Dagster leaves nested EnvVars unresolved; the resource resolves them
        chosen = dg.materialize([probe_asset()], resources={"clearml": resource},
                                run_config={"resources": {"clearml": {"config": {"default_account": "original"}}}})
        assert chosen.output_for_node("probe") == "original"
        assert _project_names(a.info) == ["probe-personal"]
        assert _project_names(b.info) == ["probe-original"]
        shown = json.dumps(chosen.dagster_run.run_config) + "".join(str(e) for e in chosen.all_events)
        assert a.info.secret_key not in shown and b.info.secret_key not in shown
    finally:
        a.stop()
        b.stop()


def test_missing_env_var_fails_fast_naming_it(monkeypatch):
    monkeypatch.setenv("CLEARML_KEY_PERSONAL", "SOMEKEY")
    monkeypatch.delenv("CLEARML_SECRET_PERSONAL", raising=False)
    error, elapsed = timed_failure(ClearMLResource.from_env(), "personal", "secret variable not set")
    assert "'personal'" in str(error) and "CLEARML_SECRET_PERSONAL" in str(error) and elapsed < BOUND_SECONDS

    # set when the definitions loaded, gone when the run resolves it (run config keeps EnvVar unresolved)
    monkeypatch.setenv("CLEARML_SECRET_PERSONAL", SECRET)
    resource = ClearMLResource.from_env()
    monkeypatch.delenv("CLEARML_SECRET_PERSONAL")
    result = dg.materialize([probe_asset()], resources={"clearml": resource}, raise_on_error=False,
                            run_config={"resources": {"clearml": {"config": {"default_account": "personal"}}}})
    assert not result.success
    text = failure_text(result)
    assert "environment variable CLEARML_SECRET_PERSONAL (secret_key) is not set" in text


# -- fail fast, no secrets ------------------------------------------------------------------------------
def _account(host: str, secret: str = SECRET) -> ClearMLAccount:
    return ClearMLAccount(api_host=host, access_key="AK-test", secret_key=secret)


def test_unreachable_account_fails_fast():
    host = f"http://127.0.0.1:{free_port()}"
    resource = ClearMLResource(accounts={"original": _account(host)}, default_account="original")
    error, elapsed = timed_failure(resource, None, "unreachable port")
    assert isinstance(error, ClearMLConnectionError)
    assert "'original'" in str(error) and host in str(error) and elapsed < BOUND_SECONDS


def test_wrong_keys_fail_fast(clearml_server: LocalServer):
    info = clearml_server.info
    resource = ClearMLResource(accounts={"personal": ClearMLAccount(
        api_host=info.api_host, files_host=info.files_host, access_key=info.access_key, secret_key=SECRET)},
        default_account="personal")
    error, elapsed = timed_failure(resource, "personal", "401 wrong keys")
    assert "refused its keys" in str(error) and info.api_host in str(error) and elapsed < BOUND_SECONDS


@pytest.mark.parametrize("status", [502, 503])
def test_5xx_after_login_fails_fast(status: int):
    server = broken_server(after_login_status=status)
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        resource = ClearMLResource(accounts={"personal": _account(host)}, default_account="personal")
        error, elapsed = timed_failure(resource, "personal", f"{status} after login")
        assert f"HTTP {status}" in str(error) and host in str(error) and elapsed < BOUND_SECONDS
    finally:
        server.shutdown()


def test_failure_in_a_run_names_account_and_host_and_hides_the_secret(clearml_server: LocalServer, capsys):
    info = clearml_server.info
    resource = ClearMLResource(accounts={"personal": ClearMLAccount(
        api_host=info.api_host, access_key=info.access_key, secret_key=SECRET)}, default_account="personal")
    started = time.monotonic()
    result = dg.materialize([probe_asset()], resources={"clearml": resource}, raise_on_error=False)
    elapsed = time.monotonic() - started
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1
    error = failures[0].step_failure_data.error
    assert "ClearML account 'personal'" in error.message and info.api_host in error.message
    captured = capsys.readouterr()
    everything = "\n".join([str(e) for e in result.all_events] + [captured.out, captured.err])
    assert SECRET not in everything
    print(f"\ntime-to-error[whole dagster.materialize run, 401]: {elapsed:.2f}s")
    assert elapsed < BOUND_SECONDS


def test_sdk_env_is_one_account_with_fast_fail_config(clearml_server: LocalServer, tmp_path: Path):
    resource = ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "h"), account="mine")
    env = resource.sdk_env()
    info = clearml_server.info
    assert (env["CLEARML_API_HOST"], env["CLEARML_FILES_HOST"]) == (info.api_host, info.files_host)
    assert (env["CLEARML_API_ACCESS_KEY"], env["CLEARML_API_SECRET_KEY"]) == (info.access_key, info.secret_key)
    assert env["CLEARML_TASK_NO_REUSE"] == "1" and env["CLEARML_ASSETS_ACCOUNT"] == "mine"
    assert "wait_on_maintenance_forever: false" in Path(env["CLEARML_CONFIG_FILE"]).read_text()
    assert Path(env["CLEARML_CACHE_DIR"]) == tmp_path / "h" / "sdk" / "mine" / "cache"


# -- the embedded local server ---------------------------------------------------------------------------
def test_local_account_starts_the_embedded_server_and_reuses_it(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CLEARML_ASSETS_HOME", str(home))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    try:
        started = time.monotonic()
        info = ensure_local_server(home, api_port=taken, files_port=0)  # preferred port held by a stranger
        print(f"\nlocal server started on demand in {time.monotonic() - started:.2f}s at {info.api_host}")
        assert not info.api_host.endswith(f":{taken}")
        record = json.loads((home / "server" / "server.json").read_text())
        assert record["api_host"] == info.api_host and "secret" not in json.dumps(record).lower()
        creds = json.loads((home / "server" / "credentials.json").read_text())[0]
        assert (info.access_key, info.secret_key) == (creds["access_key"], creds["secret_key"])

        # no configuration at all: account "local" finds the running server instead of starting another
        resource = ClearMLResource()
        assert resource.default_account == "local"
        result = dg.materialize([probe_asset()], resources={"clearml": resource})
        assert result.output_for_node("probe") == "local"
        assert resource.client().api_host == info.api_host
        assert json.loads((home / "server" / "server.json").read_text())["pid"] == record["pid"]
        assert _project_names(info) == ["probe-local"]
        assert resource.sdk_env()["CLEARML_API_SECRET_KEY"] == info.secret_key
    finally:
        busy.close()
        stop_embedded_server(home)
    deadline = time.monotonic() + 10
    while running_local_server(home) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running_local_server(home) is None


# -- .env and the dagster CLI -----------------------------------------------------------------------------
@pytest.mark.slow
def test_dotenv_and_config_json_through_dagster_asset_materialize(clearml_server: LocalServer, tmp_path: Path):
    info = clearml_server.info
    dead = f"http://127.0.0.1:{free_port()}"
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".env").write_text(
        f"CLEARML_KEY_PERSONAL={info.access_key}\nCLEARML_SECRET_PERSONAL={info.secret_key}\n"
        f"CLEARML_API_HOST_PERSONAL={info.api_host}\nCLEARML_FILES_HOST_PERSONAL={info.files_host}\n"
        f"CLEARML_WEB_HOST_PERSONAL={info.web_host}\n"
        f"CLEARML_KEY_ORIGINAL=AK-original\nCLEARML_SECRET_ORIGINAL={SECRET}\nCLEARML_API_HOST_ORIGINAL={dead}\n"
        "CLEARML_ASSETS_DEFAULT_ACCOUNT=personal\n")
    (project / "envdefs.py").write_text(textwrap.dedent("""
        import dagster as dg
        from clearml_assets.resource import ClearMLResource

        @dg.asset
        def account_probe(context, clearml: ClearMLResource) -> None:
            client = clearml.client()
            created = client.session.call("projects.create", name="from-dotenv")
            context.add_output_metadata({"account": client.account, "project_id": created["id"]})

        defs = dg.Definitions(assets=[account_probe], resources={"clearml": ClearMLResource.from_env()})
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env.update({"DAGSTER_HOME": str(tmp_path / "dh"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")])),
                "CLEARML_ASSETS_HOME": str(tmp_path / "home")})
    (tmp_path / "dh").mkdir()
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "envdefs", "--select", "account_probe"]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _project_names(info) == ["from-dotenv"]
    assert info.secret_key not in proc.stdout + proc.stderr

    config = json.dumps({"resources": {"clearml": {"config": {"default_account": "original"}}}})
    started = time.monotonic()
    proc = subprocess.run(cmd + ["--config-json", config], cwd=project, env=env, capture_output=True, text=True,
                          timeout=240)
    print(f"\ntime-to-error[dagster CLI incl. start-up, unreachable 'original']: {time.monotonic() - started:.2f}s")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"ClearML account 'original': cannot reach {dead}" in output
    assert SECRET not in output and info.secret_key not in output


# -- accounts from clearml.conf, derived files hosts, storage credentials, home, account rule (issues 13, 15) --

CONF = """
api {{
    web_server: {web}
    api_server: {api}
    credentials {{
        "access_key" = "{key}"
        "secret_key" = "{secret}"
    }}
}}
sdk {{
    aws {{
        s3 {{
            key: "GLOBALKEY"
            secret: "{secret}-s3"
            region: "eu-west-1"
            credentials: [
                {{ host: "127.0.0.1:8333", bucket: "weights", key: "SWKEY", secret: "{secret}-sw", secure: false }}
                {{ bucket: "aws-bucket", key: "AWSKEY", secret: "{secret}-aws" }}
            ]
        }}
    }}
    google.storage {{ project: "proj", credentials_json: "/keys/gcs.json" }}
    azure.storage.containers: [{{ account_name: "acct1", account_key: "{secret}-az", container_name: "models" }}]
    storage.path_substitution: [{{ registered_prefix: "http://old-files:8081", local_prefix: "{files}" }}]
}}
"""


def test_account_from_an_existing_clearml_conf(clearml_server: LocalServer, tmp_path: Path):
    info = clearml_server.info
    conf = tmp_path / "clearml.conf"
    conf.write_text(CONF.format(web=info.web_host, api=info.api_host, key=info.access_key, secret=info.secret_key,
                                files=info.files_host.replace("127.0.0.1", "localhost")))
    try:  # the file holds the local server's key: it goes away before the session's secret scan
        resource = ClearMLResource.from_env({"CLEARML_CONFIG_FILE_MINE": str(conf)})
        assert resource.accounts["mine"].config_file == str(conf)
        assert SECRET not in json.dumps(resource.accounts["mine"].model_dump(), default=str)
        client = resource.client("mine")  # logs in with the file's key pair
        assert client.api_host == info.api_host
        # files_server absent from the file: derived from the web host as the SDK does (port -> 8081)
        assert client.files_host == info.web_host.rsplit(":", 1)[0] + ":8081"
        options = client.files.storage_options
        assert options["s3://"] == {"key": "GLOBALKEY", "secret": f"{info.secret_key}-s3",
                                    "client_kwargs": {"region_name": "eu-west-1"}}
        assert options["s3://127.0.0.1:8333/weights"] == {
            "key": "SWKEY", "secret": f"{info.secret_key}-sw",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:8333", "region_name": "eu-west-1"}}
        assert options["s3://aws-bucket"]["key"] == "AWSKEY"
        assert options["gs://"] == {"token": "/keys/gcs.json", "project": "proj"}
        assert options["azure://acct1.blob.core.windows.net/models"] == {
            "account_name": "acct1", "account_key": f"{info.secret_key}-az"}
        assert client_storage_options(client, "s3://127.0.0.1:8333/weights/a/b.pt")["key"] == "SWKEY"
    finally:
        conf.unlink()


def test_clearml_conf_substitution_is_a_files_host_alias(tmp_path: Path):
    conf = tmp_path / "clearml.conf"
    conf.write_text(CONF.format(web="https://app.example.com", api="https://api.example.com", key="K", secret=SECRET,
                                files="https://files.example.com"))
    resource = ClearMLResource.from_env({"CLEARML_CONFIG_FILE_TEAM": str(conf)})
    name, where = resource.resolve("team")
    assert where["api_host"] == "https://api.example.com" and where["files_host"] == ""
    assert "http://old-files:8081" not in where["files_host_aliases"]  # it stands for another files host
    conf.write_text(CONF.format(web="https://app.example.com", api="https://api.example.com", key="K", secret=SECRET,
                                files="https://files.example.com") + 'api.files_server: "https://files.example.com"\n')
    _, where = resource.resolve("team")
    assert where["files_host"] == "https://files.example.com"
    assert where["files_host_aliases"] == ("http://old-files:8081",)


def test_environment_overrides_clearml_conf_and_a_broken_conf_is_named(tmp_path: Path):
    conf = tmp_path / "clearml.conf"
    conf.write_text(CONF.format(web="https://app.example.com", api="https://api.example.com", key="K", secret=SECRET,
                                files="x"))
    env = {"CLEARML_CONFIG_FILE_TEAM": str(conf), "CLEARML_API_HOST_TEAM": "http://clearml.internal:8008",
           "CLEARML_KEY_TEAM": "ENVKEY", "CLEARML_SECRET_TEAM": SECRET}
    os.environ.update({k: v for k, v in env.items() if k.startswith("CLEARML_KEY") or "SECRET" in k})
    try:
        _, where = ClearMLResource.from_env(env).resolve("team")
    finally:
        for k in ("CLEARML_KEY_TEAM", "CLEARML_SECRET_TEAM"):
            os.environ.pop(k, None)
    assert where["api_host"] == "http://clearml.internal:8008" and where["access_key"] == "ENVKEY"
    assert where["web_host"] == "https://app.example.com"
    conf.write_text("api { credentials { access_key: ")
    with pytest.raises(ClearMLConfigError) as err:
        ClearMLResource.from_env(env).resolve("team")
    assert str(conf) in str(err.value) and "'team'" in str(err.value) and SECRET not in str(err.value)


def test_self_hosted_account_with_only_an_api_host_gets_the_derived_files_host(monkeypatch):
    monkeypatch.setenv("CLEARML_KEY_SELF", "K")
    monkeypatch.setenv("CLEARML_SECRET_SELF", SECRET)
    env = {"CLEARML_KEY_SELF": "K", "CLEARML_SECRET_SELF": SECRET, "CLEARML_API_HOST_SELF": "https://api.corp.example"}
    resource = ClearMLResource.from_env(env)
    _, where = resource.resolve("self")
    assert where["files_host"] == ""  # nothing configured ...
    client = ClearMLClient(where["api_host"], "K", SECRET, files_host=where["files_host"] or None)
    assert client.files_host == "https://files.corp.example"  # ... derived as the SDK does


def test_storage_credentials_per_account_from_the_environment(monkeypatch):
    env = {"CLEARML_KEY_A": "K", "CLEARML_SECRET_A": SECRET, "CLEARML_S3_KEY_A": "S3K",
           "CLEARML_S3_SECRET_A": f"{SECRET}-s3", "CLEARML_S3_ENDPOINT_A": "http://127.0.0.1:8333",
           "CLEARML_FILES_HOST_ALIASES_A": "http://localhost:8081, https://files.old.example",
           "CLEARML_KEY_B": "K2", "CLEARML_SECRET_B": SECRET}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    resource = ClearMLResource.from_env(env)
    assert SECRET not in json.dumps({n: a.model_dump() for n, a in resource.accounts.items()}, default=str)
    _, a = resource.resolve("a")
    _, b = resource.resolve("b")
    assert a["storage_options"] == {"s3://": {"key": "S3K", "secret": f"{SECRET}-s3",
                                              "client_kwargs": {"endpoint_url": "http://127.0.0.1:8333"}}}
    assert b["storage_options"] == {}  # one account's storage keys never reach another
    assert a["files_host_aliases"][:2] == ("http://localhost:8081", "https://files.old.example")


def test_local_account_accepts_the_loopback_spellings_of_its_files_host(clearml_server: LocalServer):
    resource = ClearMLResource.for_local_server(clearml_server.info)
    client = resource.client()
    port = clearml_server.info.files_host.rsplit(":", 1)[1]
    assert client.files.own_url(f"http://localhost:{port}/p/t/a.bin") == f"{clearml_server.info.files_host}/p/t/a.bin"


def test_home_and_export_root_are_resolved_once_on_the_resource(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CLEARML_ASSETS_HOME", str(tmp_path / "env_home"))
    assert ClearMLResource().home_dir() == tmp_path / "env_home"
    assert ClearMLResource().export_root_dir() == tmp_path / "env_home" / "exports"
    resource = ClearMLResource(home=str(tmp_path / "field_home"))
    assert resource.home_dir() == tmp_path / "field_home"  # the field wins over the variable
    assert resource.export_root_dir() == tmp_path / "field_home" / "exports"
    assert resource.export_root_dir(str(tmp_path / "run")) == tmp_path / "run"
    assert ClearMLResource(export_root=str(tmp_path / "ex")).export_root_dir() == tmp_path / "ex"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ClearMLConfigError, match="home"):
        ClearMLResource(home=str(tmp_path / "afile")).validate_folders()


def test_home_field_reaches_sdk_children(clearml_server: LocalServer, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CLEARML_ASSETS_HOME", str(tmp_path / "elsewhere"))
    env = ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "h")).sdk_env()
    assert env["CLEARML_ASSETS_HOME"] == str(tmp_path / "h")


def test_one_account_rule_with_its_source():
    resource = ClearMLResource(accounts={"local": ClearMLAccount(embedded=True),
                                         "team": ClearMLAccount(embedded=True)}, default_account="local")
    assert resource.choose_account("team", "local").metadata() == {
        "clearml_account": "team", "clearml_account_source": "asset config"}
    assert resource.choose_account("", "team").source == "definitions"
    assert resource.choose_account(None, None).metadata()["clearml_account_source"] == "resource default_account"
    with pytest.raises(ClearMLConfigError, match="'nope' is not configured"):
        resource.choose_account("nope")
