"""Archives on a real S3 server (SeaweedFS on loopback): verified upload, manifest last, remote skip and
check, an upload cut short, the server away and back, wrong credentials, missing filesystem packages."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from seeding import DemoSpec, RawSeeder, client_of
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.errors import ArchiveError
from clearml_assets.local_server import LocalServer
from clearml_assets.storage import ArchiveStore, index_relpath, is_remote_root
from seaweedfs import CutProxy

SMALL = DemoSpec(scalar_series=3, points_per_series=40, log_lines=30, artifacts=2, artifact_bytes=200_000,
                 plots=2, debug_images=2)


@pytest.fixture(scope="module")
def staged_export(tmp_path_factory):
    """One real task export, published in a local staging root (the exporter as it is today)."""
    base = tmp_path_factory.mktemp("objectstore")
    with LocalServer(base / "server", api_port=0, files_port=0) as server:
        seeder = RawSeeder.of(server)
        task_id = seeder.seed_task(seeder.project("store"), "store", "store-task", SMALL)
        result = ClearMLTaskExporter(client_of(server), "personal", base / "staging").export_task(task_id)
    root = (base / "staging").resolve()
    index = root / index_relpath("personal", "tasks", task_id)
    assert index.exists() and not result.skipped
    return root, result, index


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _publish(store: ArchiveStore, staged):
    root, result, index = staged
    return store.publish(root, result.folder, result.archive, index=index)


def test_upload_is_verified_mirrors_the_layout_and_the_skip_reads_the_remote_manifest(s3_bucket, staged_export):
    root, result, index = staged_export
    store = ArchiveStore(f"{s3_bucket.url}/exports", s3_bucket.server.storage_options())
    rel_folder = _rel(root, result.folder)
    assert store.read_manifest(rel_folder) is None and not store.archive_is_current(rel_folder, None)
    report = _publish(store, staged_export)
    local = sorted(_rel(root, p) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".lock."))
    assert s3_bucket.keys() == [f"exports/{rel}" for rel in local]
    assert report.files == len(local)
    assert report.archive_url == f"{s3_bucket.url}/exports/{_rel(root, result.archive)}"
    remote = store.read_manifest(rel_folder)
    assert remote == json.loads((result.folder / "manifest.json").read_text())
    assert store.archive_is_current(rel_folder, remote)
    assert store.find_export("personal", "tasks", result.task_id) == rel_folder
    assert store.verify_export(rel_folder)[0] == []
    # the remote check sees a damaged copy: a member rewritten, an unlisted file
    fs = s3_bucket.filesystem()
    member = sorted(remote["files"])[0]
    fs.pipe(f"{s3_bucket.name}/exports/{rel_folder}/{member}", b"tampered")
    fs.pipe(f"{s3_bucket.name}/exports/{rel_folder}/stray.txt", b"x")
    problems, _ = store.verify_export(rel_folder)
    assert any(p.startswith(f"{rel_folder}/{member}:") for p in problems), problems
    assert any("unexpected file" in p and p.endswith("stray.txt") for p in problems), problems
    # publishing again repairs it and removes what the manifest does not list
    again = _publish(store, staged_export)
    assert again.removed == [f"{rel_folder}/stray.txt"] and store.verify_export(rel_folder)[0] == []


def test_upload_cut_short_leaves_no_manifest_and_the_next_run_completes(s3_bucket, staged_export):
    root, result, _ = staged_export
    rel_folder = _rel(root, result.folder)
    server = s3_bucket.server
    ArchiveStore(s3_bucket.url, server.storage_options()).publish(root, result.folder, result.archive)
    proxy = CutProxy("127.0.0.1", server.ports["s3.port"])
    try:
        cut = ArchiveStore(s3_bucket.url, server.storage_options(endpoint_url=proxy.endpoint_url))
        assert cut.read_manifest(rel_folder)["complete"]  # the older export is done ...
        proxy.cut_after(result.archive.stat().st_size // 2)
        with pytest.raises(ArchiveError) as caught:
            cut.publish(root, result.folder, result.archive)
        assert proxy.cuts >= 1 and proxy.endpoint_url in str(caught.value)
        assert "no manifest" in str(caught.value)
    finally:
        proxy.close()
    store = ArchiveStore(s3_bucket.url, server.storage_options())
    assert store.read_manifest(rel_folder) is None  # ... and stopped looking done before the upload began
    assert not store.archive_is_current(rel_folder, store.read_manifest(rel_folder))
    assert not any(k.endswith("manifest.json") for k in s3_bucket.keys())
    store.publish(root, result.folder, result.archive)
    assert store.archive_is_current(rel_folder, store.read_manifest(rel_folder))
    assert store.verify_export(rel_folder)[0] == []


def test_server_away_then_back(s3_bucket, staged_export):
    root, result, _ = staged_export
    rel_folder = _rel(root, result.folder)
    server = s3_bucket.server
    store = ArchiveStore(s3_bucket.url, server.storage_options(config_kwargs={"connect_timeout": 2}))
    with server.away():
        for attempt in (lambda: store.publish(root, result.folder, result.archive),
                        lambda: store.read_manifest(rel_folder)):
            with pytest.raises(ArchiveError) as caught:
                attempt()
            assert server.endpoint_url in str(caught.value) and "could not be reached" in str(caught.value)
    assert store.read_manifest(rel_folder) is None
    store.publish(root, result.folder, result.archive)
    assert store.verify_export(rel_folder)[0] == []


def test_wrong_credentials_are_a_clear_error_without_the_secret(s3_bucket, staged_export):
    root, result, _ = staged_export
    wrong_secret = "Wr0ng-" + s3_bucket.server.secret_key[::-1]
    store = ArchiveStore(s3_bucket.url, s3_bucket.server.storage_options(secret=wrong_secret))
    with pytest.raises(ArchiveError) as caught:
        store.publish(root, result.folder, result.archive)
    text = f"{caught.value} {caught.value.metadata}"
    assert "refused the credentials" in text and "AWS_SECRET_ACCESS_KEY" in text
    assert wrong_secret not in text and s3_bucket.server.secret_key not in text
    assert s3_bucket.keys() == []


def test_credentials_and_endpoint_from_the_standard_environment(s3_bucket, staged_export, monkeypatch):
    root, result, _ = staged_export
    for name, value in s3_bucket.server.env().items():
        monkeypatch.setenv(name, value)
    store = ArchiveStore(f"{s3_bucket.url}/env/")
    assert store.endpoint == s3_bucket.server.endpoint_url
    store.publish(root, result.folder, result.archive)
    assert store.verify_export(_rel(root, result.folder))[0] == []


@pytest.mark.parametrize("url, package", [("gs://bucket/x", "gcsfs"), ("az://container/x", "adlfs")])
def test_other_clouds_name_the_package_to_install(url, package, monkeypatch):
    registry = importlib.import_module("fsspec.registry")._registry  # fsspec.registry is also a mapping's name
    monkeypatch.setitem(sys.modules, package, None)  # as on a machine without it: importing it fails
    for protocol in ("gs", "gcs", "az", "abfs", "adl"):  # and no filesystem class imported before
        monkeypatch.delitem(registry, protocol, raising=False)
    with pytest.raises(ArchiveError, match=f"pip install {package}"):
        ArchiveStore(url)


def test_remote_roots_are_told_from_local_paths(tmp_path):
    assert is_remote_root("s3://b/p") and is_remote_root("gs://b") and is_remote_root("az://c/p")
    assert not is_remote_root(tmp_path) and not is_remote_root(str(tmp_path)) and not is_remote_root(None)
    assert not is_remote_root("file:///tmp/x")


def test_a_local_fsspec_root_gets_the_same_layout(tmp_path, staged_export):
    root, result, index = staged_export
    store = ArchiveStore(f"file://{tmp_path}/mirror")
    _publish(store, staged_export)
    rel_folder = _rel(root, result.folder)
    assert store.verify_export(rel_folder)[0] == []
    assert (tmp_path / "mirror" / rel_folder / "manifest.json").read_bytes() == \
        (result.folder / "manifest.json").read_bytes()
    fetched = store.fetch_folder(rel_folder, tmp_path / "fetched")
    assert fetched["archive"]["sha256"] == result.manifest["archive"]["sha256"]
    assert sorted(p.name for p in (tmp_path / "fetched").rglob("*")) == \
        sorted(p.name for p in result.folder.rglob("*"))
    shutil.rmtree(tmp_path / "fetched")


def test_remote_check_fails_an_incomplete_or_missing_export(s3_bucket, staged_export, tmp_path):
    from clearml_assets.storage import check_remote_export

    root, result, index = staged_export
    store = ArchiveStore(s3_bucket.url, s3_bucket.server.storage_options())
    passed, meta = check_remote_export(store, "personal", "tasks", result.task_id)
    assert not passed and "no published export" in meta["problem"]
    _publish(store, staged_export)
    passed, meta = check_remote_export(store, "personal", "tasks", result.task_id)
    assert passed and meta["problems"] == [] and meta["archive_url"].startswith(s3_bucket.url)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    folder = copy / _rel(root, result.folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["status"] = "incomplete"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    store.publish(copy, folder, copy / _rel(root, result.archive), index=copy / _rel(root, index))
    passed, meta = check_remote_export(store, "personal", "tasks", result.task_id)
    assert not passed and "status incomplete" in meta["problem"]
