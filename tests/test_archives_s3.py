"""Archives of a task whose files the real SDK wrote to a real S3 server (SeaweedFS on loopback).

The SDK child writes artifacts, model weights and debug images with ``output_uri="s3://host:port/bucket/..."``
and its own S3 credentials (``clearml.conf`` ``sdk.aws.s3.credentials`` with host, key, secret,
``secure: false``). The archive must hold every byte: counted against what the server recorded and what
the bucket holds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.packing import verify_archive
from clearml_assets.client import ClearMLClient
from clearml_assets.sdk_process import FASTFAIL_CONF
from conftest import printed_json, run_sdk_script

# The ``seaweedfs`` (session) and ``s3_bucket`` (a fresh bucket per test) fixtures come from tests/seaweedfs.py,
# registered in conftest.py: a real ``weed server -s3`` on loopback whose S3 API requires the key pair.


def _host(bucket) -> str:
    """``127.0.0.1:<port>``: the S3 endpoint as the SDK's ``sdk.aws.s3.credentials[].host`` names it."""
    return bucket.server.endpoint_url.split("://", 1)[1]


def _options(bucket, **overrides) -> dict:
    """The account's storage options for the endpoint (what the resource fills from clearml.conf)."""
    return {f"s3://{_host(bucket)}": bucket.server.storage_options(**overrides)}


def _sdk_conf(path: Path, bucket) -> Path:
    server = bucket.server
    path.write_text(FASTFAIL_CONF + "\nsdk.aws.s3 {\n  key: \"\"\n  secret: \"\"\n  region: \"us-east-1\"\n"
                    "  credentials: [{\n"
                    f"    host: \"{_host(bucket)}\"\n    key: \"{server.access_key}\"\n"
                    f"    secret: \"{server.secret_key}\"\n    multipart: false\n    secure: false\n"
                    "  }]\n}\n", encoding="utf-8")
    return path


SCRIPT = """
    import hashlib, json, os
    import numpy as np
    from clearml import Task, OutputModel
    dest = os.environ["S3_DEST"]
    task = Task.init(project_name="s3/arch", task_name="s3 outputs", output_uri=dest, reuse_last_task_id=False)
    logger = task.get_logger()
    logger.set_default_upload_destination(dest)
    for i in range(3):
        logger.report_image("samples", "batch", iteration=i,
                            image=np.random.randint(0, 255, (16, 16, 3), dtype=np.uint8))
    with open("blob.bin", "wb") as f:
        f.write(os.urandom(200_000))
    task.upload_artifact("blob", artifact_object="blob.bin", wait_on_upload=True)
    with open("w.pt", "wb") as f:
        f.write(os.urandom(70_000))
    model = OutputModel(task=task, name="best")
    model.update_weights("w.pt", auto_delete_file=False)
    task.flush(wait_for_uploads=True)
    logger.flush()
    print(json.dumps({"id": task.id, "blob": hashlib.sha256(open("blob.bin", "rb").read()).hexdigest(),
                      "w": hashlib.sha256(open("w.pt", "rb").read()).hexdigest()}))
    task.close()
"""


def test_sdk_s3_outputs_are_archived_byte_for_byte(clearml_server, sdk_runner, s3_bucket, tmp_path: Path):
    env = dict(sdk_runner.env)
    env["CLEARML_CONFIG_FILE"] = str(_sdk_conf(tmp_path / "clearml-s3.conf", s3_bucket))
    env["S3_DEST"] = f"s3://{_host(s3_bucket)}/{s3_bucket.name}/runs"
    out = run_sdk_script(SCRIPT, env, timeout=300, cwd=tmp_path)
    facts = printed_json(out)

    fs = s3_bucket.filesystem()
    objects = [f"{s3_bucket.name}/{key}" for key in s3_bucket.keys()]
    bucket_hashes = {hashlib.sha256(fs.cat(p)).hexdigest() for p in objects}
    assert facts["blob"] in bucket_hashes and facts["w"] in bucket_hashes and len(objects) >= 5

    info = clearml_server.info
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="s3",
                           files_host=info.files_host)
    client.files.storage_options = _options(s3_bucket)  # what the resource fills from the account's clearml.conf
    result = ClearMLTaskExporter(client, "s3", tmp_path / "exports").export_task(facts["id"])
    manifest = result.manifest
    assert manifest["status"] == "ok", manifest["issues"]
    counts = manifest["counts"]
    assert counts["artifact_files"] == 1 and counts["model_files"] == 1
    assert counts["debug_image_files"] == manifest["server_counts"]["debug_image_events"] == 3
    archived = {e["sha256"] for e in manifest["files"].values()}
    assert bucket_hashes <= archived  # every object the SDK wrote is in the archive, byte for byte
    recorded = counts["artifact_files"] + counts["model_files"] + counts["debug_image_files"]
    assert recorded == len(objects)
    assert verify_archive(result.archive, manifest) == []
    secret = s3_bucket.server.secret_key
    assert secret not in (result.folder / "task.json").read_text() and secret not in json.dumps(manifest)


def test_s3_with_wrong_keys_is_incomplete_then_completed(clearml_server, s3_bucket, tmp_path: Path):
    from seeding import DemoSpec, RawSeeder

    s3_bucket.filesystem().pipe(f"{s3_bucket.name}/direct/a.bin", b"a" * 1000)
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("s3/nocreds"), "s3/nocreds", "no creds",
                               DemoSpec(1, 2, 0, 0, 0, 0, 0), complete=False)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "a", "type": "custom", "mode": "output",
         "uri": f"s3://{_host(s3_bucket)}/{s3_bucket.name}/direct/a.bin"}])
    seeder.call("tasks.completed", task=task_id, force=True)
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="s3",
                           files_host=info.files_host)
    client.files.storage_options = _options(s3_bucket, key="wrong", secret="wrong")
    result = ClearMLTaskExporter(client, "s3", tmp_path / "x").export_task(task_id)
    assert result.manifest["status"] == "incomplete"  # the bucket holds it; the archive does not
    client.files.storage_options = _options(s3_bucket)
    again = ClearMLTaskExporter(client, "s3", tmp_path / "x").export_task(task_id)
    assert not again.skipped and again.manifest["status"] == "ok"
    assert (again.folder / "artifacts" / "output.a" / "a.bin").read_bytes() == b"a" * 1000
