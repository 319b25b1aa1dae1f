"""Dataset versions copied with their parent chain between two accounts (two local servers, their own key
pairs, real SDK children): the copied child version points at the copied parent, its local copy in the
target holds the same files, and a second copy creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearml_assets.datasets.sdk_ops import create_version
from clearml_assets.local_server import LocalServer
from clearml_assets.resource import ClearMLAccount, ClearMLResource
from clearml_assets.restore.datasets import copy_dataset_version
from clearml_assets.restore.engine import provenance_tag
from clearml_assets.sdk_process import run_in_sdk_process


def _account(server: LocalServer) -> ClearMLAccount:
    info = server.info
    return ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=info.files_host,
                          credentials_file=str(Path(info.data_dir) / "credentials.json"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


@pytest.mark.slow
def test_dataset_versions_copy_with_their_parent_chain(tmp_path):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        clearml = ClearMLResource(accounts={"personal": _account(a), "original": _account(b)},
                                  default_account="personal", home=str(tmp_path / "home"))
        v1_files = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 10}
        v2_files = {"sub/b.bin": b"changed", "c.txt": b"gamma\n"}
        env_a = clearml.sdk_env("personal")
        v1 = run_in_sdk_process(create_version, {"name": "shapes", "project": "ds", "version": "1.0.0",
                                                 "folder": str(_write(tmp_path / "v1", v1_files))}, env=env_a,
                                timeout=300)
        v2 = run_in_sdk_process(create_version, {"name": "shapes", "project": "ds", "version": "1.1.0",
                                                 "parents": [v1.id],
                                                 "folder": str(_write(tmp_path / "v2", v2_files))}, env=env_a,
                                timeout=300)
        rows = copy_dataset_version(clearml, "personal", "original", v2.id)
        assert [(r["source_id"], r["version"], r["unchanged"]) for r in rows] == \
            [(v1.id, "1.0.0", False), (v2.id, "1.1.0", False)]
        copied = {r["source_id"]: r["id"] for r in rows}

        chain = run_in_sdk_process("clearml_assets.restore.sdk_datasets:read_chain", copied[v2.id],
                                   str(tmp_path / "check"), env=clearml.sdk_env("original"), timeout=300)
        assert [c["id"] for c in chain] == [copied[v1.id], copied[v2.id]]
        assert chain[1]["parents"] == [copied[v1.id]]
        assert _files(Path(chain[1]["folder"])) == v2_files and _files(Path(chain[0]["folder"])) == v1_files
        assert provenance_tag(v2.id) in chain[1]["tags"]

        target = clearml.client("original")
        before = target.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"]
        again = copy_dataset_version(clearml, "personal", "original", v2.id)
        assert all(r["unchanged"] for r in again) and {r["id"] for r in again} == set(copied.values())
        assert target.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"] == before
