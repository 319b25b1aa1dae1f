"""Storage credentials go only to the endpoints the account configures (issue 26, finding 3).

A task's author chooses the URIs ClearML records. An artifact at ``s3://127.0.0.1:<port>/bucket/key`` must not
make the exporter sign requests with the account's S3 key (or the machine's ``AWS_*`` key) for that port: such a
URL is recorded ``external`` with the reason and no request is made. Objects on the configured endpoint (a real
SeaweedFS) are still fetched with the account's credentials, byte for byte.

The trap is a listening socket on a free loopback port that records every request it receives. It speaks TLS with
a certificate the machine trusts (``AWS_CA_BUNDLE``, a ``trustme`` CA), as the author's own domain with a public
certificate would, so a signed request would arrive readable. The counts are read after the export finished.
"""

from __future__ import annotations

import json
import os
import secrets
import socketserver
import ssl
import threading
from pathlib import Path

import pytest
import trustme

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.resource import ClearMLResource
from seeding import DemoSpec, RawSeeder


class CredentialTrap(socketserver.ThreadingTCPServer):
    """A loopback HTTPS "S3 endpoint" the task's author chose: records each request head, answers 404.

    Args:
        ca: The CA whose certificate for ``127.0.0.1`` the trap presents.
    """

    daemon_threads = True

    def __init__(self, ca: trustme.CA):
        self.heads: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._tls)
        super().__init__(("127.0.0.1", 0), _TrapHandler)
        threading.Thread(target=self.serve_forever, daemon=True, name="credential-trap").start()

    def get_request(self):
        sock, address = super().get_request()
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def signed(self, *key_ids: str) -> list[bytes]:
        """Request heads carrying an ``Authorization`` header, a SigV4 signature or one of ``key_ids``."""
        marks = [b"authorization:", b"aws4-hmac-sha256", b"x-amz-credential", *(k.lower().encode() for k in key_ids)]
        return [h for h in self.heads if any(m in h.lower() for m in marks)]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _TrapHandler(socketserver.StreamRequestHandler):
    timeout = 30  # a client that connects and sends nothing does not hold the thread forever

    def handle(self) -> None:
        with self.server._lock:
            self.server.connections += 1
        try:
            self.connection.do_handshake()
        except OSError:
            return  # the client refused the certificate: nothing was sent
        head = b""
        while len(head) < 65536:
            line = self.rfile.readline(8192)
            head += line
            if line in (b"\r\n", b"\n", b""):
                break
        with self.server._lock:
            self.server.heads.append(head)
        self.wfile.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")


@pytest.fixture
def trap(tmp_path: Path, monkeypatch):
    """The trap, its CA trusted by this process's AWS clients (``AWS_CA_BUNDLE``)."""
    ca = trustme.CA()
    bundle = tmp_path / "trap-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    server = CredentialTrap(ca)
    yield server
    server.close()


def _conf(path: Path, seaweed_host: str, server, *, global_key: str = "") -> Path:
    """A clearml.conf with storage only: per-host credentials for SeaweedFS, optionally a global (AWS) key."""
    glob = f'key: "{global_key}"\n  secret: "{global_key}-secret"\n' if global_key else 'key: ""\n  secret: ""\n'
    path.write_text("sdk.aws.s3 {\n  " + glob + '  region: "us-east-1"\n  credentials: [{\n'
                    f'    host: "{seaweed_host}"\n    key: "{server.access_key}"\n    secret: "{server.secret_key}"\n'
                    "    secure: false\n  }]\n}\n", encoding="utf-8")
    return path


def _seed(clearml_server, s3_bucket, trap) -> tuple[str, bytes]:
    """A task with one artifact on SeaweedFS, one on the trap, and a debug image on the trap."""
    data = os.urandom(5000)
    s3_bucket.filesystem().pipe(f"{s3_bucket.name}/runs/real.bin", data)
    seaweed = s3_bucket.server.endpoint_url.split("://", 1)[1]
    seeder = RawSeeder.of(clearml_server)
    task_id = seeder.seed_task(seeder.project("creds"), "creds", "author's uris", DemoSpec(1, 2, 0, 0, 0, 0, 0),
                               complete=False)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "real", "type": "custom", "mode": "output", "uri": f"s3://{seaweed}/{s3_bucket.name}/runs/real.bin"},
        {"key": "lure", "type": "custom", "mode": "output", "uri": f"s3://{trap.host}/{s3_bucket.name}/lure.bin"}])
    seeder.add_events([{"type": "training_debug_image", "task": task_id, "iter": 0, "metric": "m", "variant": "v",
                        "url": f"s3://{trap.host}/bucket/image.png"}])
    seeder.call("tasks.completed", task=task_id, force=True)
    return task_id, data


@pytest.mark.parametrize("source", ["clearml.conf global key", "account variables", "machine AWS variables"])
def test_storage_credentials_never_reach_a_host_the_task_named(source, clearml_server, s3_bucket, trap,
                                                               tmp_path: Path, monkeypatch):
    task_id, data = _seed(clearml_server, s3_bucket, trap)
    info, server = clearml_server.info, s3_bucket.server
    seaweed = server.endpoint_url.split("://", 1)[1]
    account_key = "AKIA" + secrets.token_hex(8).upper()  # the key id that must not reach the trap
    env = {"CLEARML_KEY_TEAM": info.access_key, "CLEARML_SECRET_TEAM": info.secret_key,
           "CLEARML_API_HOST_TEAM": info.api_host, "CLEARML_WEB_HOST_TEAM": info.web_host,
           "CLEARML_FILES_HOST_TEAM": info.files_host,
           "CLEARML_CONFIG_FILE_TEAM": str(_conf(tmp_path / "clearml.conf", seaweed, server,
                                                 global_key=account_key if source.startswith("clearml") else ""))}
    if source == "account variables":  # an AWS key pair of the account (no endpoint: AWS S3)
        env.update({"CLEARML_S3_KEY_TEAM": account_key, "CLEARML_S3_SECRET_TEAM": f"{account_key}-secret"})
    if source == "machine AWS variables":  # the machine's own key: never used for what a task recorded
        for name, value in {"AWS_ACCESS_KEY_ID": account_key, "AWS_SECRET_ACCESS_KEY": f"{account_key}-secret",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = ClearMLResource.from_env(env, home=str(tmp_path / "home")).client("team")

    result = ClearMLTaskExporter(client, "team", tmp_path / "exports").export_task(task_id)

    assert trap.signed(account_key, server.access_key) == [] and trap.connections == 0  # no request at all
    index = json.loads((result.folder / "artifacts" / "index.json").read_text())
    artifacts = {a["key"]: a["download"] for a in index}
    lure = artifacts["lure"]
    assert lure["status"] == "external" and "not fetched" in lure["reason"] and trap.host in lure["reason"]
    assert artifacts["real"]["status"] == "ok"  # the configured endpoint, with the account's credentials
    assert (result.folder / artifacts["real"]["file"]).read_bytes() == data
    image = json.loads((result.folder / "debug_images" / "downloads.jsonl").read_text().splitlines()[0])
    assert image["status"] == "external" and "not fetched" in image["reason"]
    assert result.manifest["status"] == "ok" and result.manifest["counts"]["external_references"] == 2


def test_azure_files_are_read_from_the_configured_account_only(clearml_server, azurite, az_container, trap,
                                                              tmp_path: Path):
    """``azure://<account>.blob.core.windows.net/<container>/<blob>`` as the SDK records it, read from the
    account's configured endpoint (Azurite through its connection string); another storage account or a host
    the task named is recorded ``external`` and never contacted."""
    from azurite import ACCOUNT

    from clearml_assets.client import ClearMLClient

    container = az_container.removeprefix("az://")
    data = os.urandom(3000)
    azurite.filesystem().pipe(f"{container}/runs/real.bin", data)
    seeder = RawSeeder.of(clearml_server)
    task_id = seeder.seed_task(seeder.project("az"), "az", "azure uris", DemoSpec(1, 2, 0, 0, 0, 0, 0), complete=False)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": key, "type": "custom", "mode": "output", "uri": uri} for key, uri in (
            ("real", f"azure://{ACCOUNT}.blob.core.windows.net/{container}/runs/real.bin"),
            ("other", f"azure://someoneelse.blob.core.windows.net/{container}/runs/real.bin"),
            ("lure", f"azure://{trap.host}/{ACCOUNT}/{container}/runs/real.bin"))])
    seeder.call("tasks.completed", task=task_id, force=True)
    info = clearml_server.info
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="az", files_host=info.files_host)
    client.files.storage_options = {"azure://": {"account_name": ACCOUNT,
                                                 "connection_string": azurite.connection_string}}

    result = ClearMLTaskExporter(client, "az", tmp_path / "exports").export_task(task_id)

    records = {a["key"]: a["download"] for a in json.loads((result.folder / "artifacts" / "index.json").read_text())}
    assert records["real"]["status"] == "ok" and (result.folder / records["real"]["file"]).read_bytes() == data
    for key in ("other", "lure"):
        assert records[key]["status"] == "external" and "not fetched" in records[key]["reason"]
    assert trap.connections == 0 and result.manifest["status"] == "ok"
    assert azurite.key not in json.dumps(result.manifest) + (result.folder / "task.json").read_text()


SEAWEED = {"key": "SWKEY", "secret": "SWSECRET", "client_kwargs": {"endpoint_url": "http://127.0.0.1:8333"}}


def test_s3_credentials_by_endpoint():
    from clearml_assets.storage.credentials import object_access

    ok = object_access("s3://127.0.0.1:8333/bucket/a/b", SEAWEED)
    assert (ok.refused, ok.path, ok.endpoint) == (None, "bucket/a/b", "http://127.0.0.1:8333")
    assert ok.options["key"] == "SWKEY" and ok.options["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:8333"
    assert ok.options["config_kwargs"]["connect_timeout"] and ok.options["config_kwargs"]["read_timeout"]
    # other spellings of the same loopback endpoint are read from the configured URL
    assert object_access("s3://localhost:8333/bucket/k", SEAWEED).path == "bucket/k"
    # a bucket on the configured endpoint (the URL names no endpoint)
    assert object_access("s3://bucket/k", SEAWEED).path == "bucket/k"
    for url in ("s3://127.0.0.1:8334/bucket/k", "s3://127.0.0.1:83330/bucket/k", "s3://[::2]:8333/bucket/k",
                "s3://user:pw@evil.example:443/bucket/k"):
        refused = object_access(url, SEAWEED).refused
        assert refused and "not fetched" in refused and "pw@" not in refused
    aws = {"key": "AWSKEY", "secret": "AWSSECRET"}
    assert object_access("s3://bucket/k", aws).endpoint == "AWS S3"
    assert object_access("s3://127.0.0.1:9000/bucket/k", aws).refused  # not AWS: never the AWS key
    minio = {"key": "K", "secret": "S", "client_kwargs": {"endpoint_url": "https://minio.corp.example"}}
    assert object_access("s3://minio.corp.example/bucket/k", minio).path == "bucket/k"  # default port
    assert object_access("s3://minio.corp.example:9000/bucket/k", minio).refused


def test_no_account_credentials_means_not_fetched_and_never_the_machines():
    from clearml_assets.storage.credentials import object_access

    for url in ("s3://bucket/k", "gs://bucket/k", "azure://acct.blob.core.windows.net/c/k"):
        access = object_access(url, {})
        assert access.refused and "no storage credentials" in access.refused
    # configured without a key: anonymous, never the machine's default credentials
    assert object_access("s3://b/k", {"client_kwargs": {"endpoint_url": "http://127.0.0.1:8333"}}).options["anon"]
    assert object_access("gs://b/k", {"project": "p"}).options["token"] == "anon"
    assert object_access("azure://acct.blob.core.windows.net/c/k", {"account_name": "acct"}).options["anon"]
    # clearml.conf's use_credentials_chain: the account chose the machine's AWS chain
    chain = object_access("s3://b/k", {"credentials_chain": True})
    assert chain.refused is None and "anon" not in chain.options and "credentials_chain" not in chain.options


def test_gs_and_azure_credentials_by_endpoint():
    from clearml_assets.storage.credentials import object_access

    gs = {"token": "/keys/sa.json", "project": "p"}
    access = object_access("gs://bucket/a/b", gs)
    assert (access.protocol, access.path, access.endpoint, access.options["token"]) == \
        ("gcs", "bucket/a/b", "Google Cloud Storage", "/keys/sa.json")
    assert object_access("gs://127.0.0.1:9000/bucket/k", gs).refused  # a host, not a bucket
    az = {"account_name": "acct1", "account_key": "KEY"}
    access = object_access("azure://acct1.blob.core.windows.net/models/w.pt", az)
    assert (access.protocol, access.path, access.endpoint) == ("az", "models/w.pt", "https://acct1.blob.core.windows.net")
    for url in ("azure://acct2.blob.core.windows.net/models/w.pt", "azure://127.0.0.1:10000/acct1/models/w.pt",
                "azure://acct1.blob.core.windows.net.evil.example/models/w.pt"):
        assert object_access(url, az).refused, url
    conn = {"connection_string": "AccountName=dev;AccountKey=K;BlobEndpoint=http://127.0.0.1:10000/dev;"}
    access = object_access("azure://dev.blob.core.windows.net/c/k", conn)
    assert access.endpoint == "http://127.0.0.1:10000/dev" and access.path == "c/k"


def test_options_match_whole_path_segments():
    from clearml_assets.storage import options_for

    options = {"s3://": {"key": "generic"}, "s3://bucket": {"key": "bucket"},
               "s3://127.0.0.1:8333": {"key": "seaweed"}}
    assert options_for("s3://bucket/k", options) == {"key": "bucket"}
    assert options_for("s3://bucket-other/k", options) == {"key": "generic"}  # not a prefix at a boundary
    assert options_for("s3://127.0.0.1:83330/b/k", options) == {"key": "generic"}
    assert options_for("s3://127.0.0.1:8333/b/k", options) == {"key": "seaweed"}
    assert options_for("gs://b/k", options) == {}


def test_clearml_conf_credentials_chain_and_per_host_keys():
    from clearml_assets.clearml_conf import storage_options_from_tree

    sdk = {"aws": {"s3": {"key": "", "secret": "", "region": "eu-west-1", "use_credentials_chain": True,
                          "credentials": [{"host": "127.0.0.1:8333", "key": "SW", "secret": "SWS", "secure": False},
                                          {"bucket": "roles", "use_credentials_chain": True}]}}}
    options = storage_options_from_tree(sdk)
    assert options["s3://"] == {"credentials_chain": True, "client_kwargs": {"region_name": "eu-west-1"}}
    assert options["s3://roles"]["credentials_chain"] is True and "key" not in options["s3://roles"]
    assert options["s3://127.0.0.1:8333"] == {"key": "SW", "secret": "SWS", "client_kwargs": {
        "endpoint_url": "http://127.0.0.1:8333", "region_name": "eu-west-1"}}
    assert "s3://" not in storage_options_from_tree({"aws": {"s3": {"key": "", "secret": ""}}})
