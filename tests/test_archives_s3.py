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

import pytest

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.packing import verify_archive
from clearml_assets.client import ClearMLClient
from clearml_assets.sdk_process import FASTFAIL_CONF
from conftest import run_sdk_script
from seaweedfs import SeaweedS3

BUCKET = "clearml-out"


@pytest.fixture
def s3(tmp_path: Path):
    server = SeaweedS3(tmp_path / "seaweed").start()
    try:
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True, **server.storage_options()).mkdir(BUCKET)
        yield server
    finally:
        server.stop()


def _sdk_conf(path: Path, s3: SeaweedS3) -> Path:
    path.write_text(FASTFAIL_CONF + "\nsdk.aws.s3 {\n  key: \"\"\n  secret: \"\"\n  region: \"us-east-1\"\n"
                    "  credentials: [{\n"
                    f"    host: \"{s3.host}\"\n    key: \"{s3.access_key}\"\n"
                    f"    secret: \"{s3.secret_key}\"\n    multipart: false\n    secure: false\n"
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


def test_sdk_s3_outputs_are_archived_byte_for_byte(clearml_server, sdk_runner, s3, tmp_path: Path):
    import s3fs

    env = dict(sdk_runner.env)
    env["CLEARML_CONFIG_FILE"] = str(_sdk_conf(tmp_path / "clearml-s3.conf", s3))
    env["S3_DEST"] = f"s3://{s3.host}/{BUCKET}/runs"
    out = run_sdk_script(SCRIPT, env, timeout=300, cwd=tmp_path)
    facts = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3.storage_options())
    objects = [p for p in fs.find(BUCKET) if not p.endswith("/")]
    bucket_hashes = {hashlib.sha256(fs.cat(p)).hexdigest() for p in objects}
    assert facts["blob"] in bucket_hashes and facts["w"] in bucket_hashes and len(objects) >= 5

    info = clearml_server.info
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="s3",
                           files_host=info.files_host)
    # the account's storage credentials (filled from accounts/clearml.conf by the resource)
    client.storage_options = {f"s3://{s3.host}": {"key": s3.access_key, "secret": s3.secret_key,
                                                  "client_kwargs": {"endpoint_url": s3.endpoint,
                                                                    "region_name": "us-east-1"}}}
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
    assert s3.secret_key not in (result.folder / "task.json").read_text()
    assert s3.secret_key not in json.dumps(manifest)


def test_s3_without_credentials_is_incomplete_not_ok(clearml_server, s3, tmp_path: Path):
    import s3fs

    from clearml_assets.archives.demo import DemoSpec, RawSeeder

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3.storage_options())
    fs.pipe(f"{BUCKET}/direct/a.bin", b"a" * 1000)
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("s3/nocreds"), "s3/nocreds", "no creds",
                               DemoSpec(1, 2, 0, 0, 0, 0, 0), complete=False)
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "a", "type": "custom", "mode": "output", "uri": f"s3://{s3.host}/{BUCKET}/direct/a.bin"}])
    seeder.call("tasks.completed", task=task_id, force=True)
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, account="s3",
                           files_host=info.files_host)
    client.storage_options = {f"s3://{s3.host}": {"key": "wrong", "secret": "wrong", "secure": False}}
    result = ClearMLTaskExporter(client, "s3", tmp_path / "x").export_task(task_id)
    assert result.manifest["status"] == "incomplete"  # the bucket holds it; the archive does not
    client.storage_options = {f"s3://{s3.host}": {"key": s3.access_key, "secret": s3.secret_key,
                                                  "secure": False}}
    again = ClearMLTaskExporter(client, "s3", tmp_path / "x").export_task(task_id)
    assert not again.skipped and again.manifest["status"] == "ok"
    assert (again.folder / "artifacts" / "output.a" / "a.bin").read_bytes() == b"a" * 1000
