"""The dataset assets end to end: Dagster materializations creating ClearML dataset versions on the
local server, read back with the real ClearML SDK."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from clearml_assets.datasets import build_dataset_defs
from clearml_assets.datasets.shapes import generate_demo_dataset, render_demo_image
from clearml_assets.datasets.versions import list_dataset_versions
from clearml_assets.errors import DatasetValidationError
from clearml_assets.resource import ClearMLResource
from clearml_assets.sdk_process import SDKProcessError, run_in_sdk_process

from conftest import run_sdk_script, sdk_env

PROJECT = "ds_test"
RAW, CURATED, VIEW = ("datasets", "shapes_raw"), ("datasets", "shapes_curated"), ("datasets", "shapes_training_view")


def _resource(server, home: Path):
    return ClearMLResource.for_local_server(server.info, home=str(home))


@pytest.fixture
def env(clearml_server, tmp_path, monkeypatch):
    monkeypatch.setenv("CLEARML_ASSETS_HOME", str(tmp_path / "assets_home"))
    defs = build_dataset_defs(dataset_project=PROJECT, clearml=_resource(clearml_server, tmp_path / "res"))
    src = tmp_path / "src"
    generate_demo_dataset(src, images=24, seed=1, size=96)
    ns = type("Env", (), {})()
    ns.defs, ns.src, ns.server, ns.tmp = defs, src, clearml_server, tmp_path
    ns.client = _resource(clearml_server, tmp_path / "res").client()
    ns.sdk = lambda code, timeout=180: run_sdk_script(code, sdk_env(clearml_server.info, tmp_path / "sdkhome"),
                                                      timeout=timeout, cwd=tmp_path)
    return ns


def _run(env, selection, run_config: dict, raise_on_error: bool = True, instance=None, defs=None
         ) -> dg.ExecuteInProcessResult:
    defs = defs or env.defs
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                          run_config={"ops": run_config}, instance=instance,
                          resources={"clearml": _resource(env.server, env.tmp / "res")},
                          raise_on_error=raise_on_error)


def _meta(result: dg.ExecuteInProcessResult, key: tuple[str, ...]) -> dict:
    mats = [m for m in result.asset_materializations_for_node("__".join(key)) if m.asset_key.path == list(key)]
    assert len(mats) == 1
    return {k: getattr(v, "value", v) for k, v in mats[0].metadata.items()}


def _raw_cfg(src: Path) -> dict:
    return {"datasets__shapes_raw": {"config": {"source_folder": str(src), "demo": False}}}


@pytest.mark.slow
def test_chain_versions_parents_dedup_and_training_copy(env, capfd):
    instance = dg.DagsterInstance.ephemeral()
    everything = [dg.AssetKey(list(k)) for k in (RAW, CURATED, VIEW)]
    first = _run(env, everything, _raw_cfg(env.src), instance=instance)
    raw, cur, view = (_meta(first, k) for k in (RAW, CURATED, VIEW))
    assert (raw["dataset_version"], cur["dataset_version"], view["dataset_version"]) == ("1.0.0",) * 3
    # the SDK children read the new version's own configuration, not a stale copy (it warned on every child)
    assert "Could not repair dependency graph" not in "".join(capfd.readouterr())
    # one account rule, recorded: no account in run config or build_dataset_defs -> the resource's default
    for meta in (raw, cur, view):
        assert meta["clearml_account_source"] == "resource default_account"
        assert meta["clearml_account"] == env.client.account
    assert cur["parent_dataset_ids"] == raw["dataset_id"] and view["parent_dataset_ids"] == cur["dataset_id"]
    assert raw["uploaded_files"] == raw["file_count"] == 24 * 2 + 1
    # Curated inherits the raw files and uploads only manifest, csv, rejected list and classes.txt.
    assert cur["uploaded_files"] <= 4 and cur["frames"] == 24
    boxes = sum(1 for p in (env.src / "labels").glob("*.txt") for line in p.read_text().splitlines() if line.strip())
    assert sum(raw["class_counts"].values()) == boxes and cur["class_counts"] == raw["class_counts"]
    assert sum(view["split_counts"].values()) == 24 and min(view["split_counts"].values()) > 0
    assert view["data_yaml"] == "data.yaml" and view["train_query"] == 'split == "train"'
    assert "frame_id" in view["manifest_preview"] and view["clearml_url"].startswith("http")
    evaluations = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
    assert evaluations == {"labels_valid": True, "splits_not_empty": True, "class_balance": True}

    out = env.sdk(f"""
        import json, os
        from clearml import Dataset
        view = Dataset.get(dataset_id="{view["dataset_id"]}")
        copy = view.get_local_copy()
        latest = Dataset.get(dataset_project="{PROJECT}", dataset_name="shapes_training_view")
        print(json.dumps({{"yaml": open(os.path.join(copy, "data.yaml")).read(),
                          "train": sum(os.path.isfile(os.path.join(copy, line)) for line in
                                       open(os.path.join(copy, "train.txt")).read().split()),
                          "val_labels": sum(os.path.isfile(os.path.join(copy, line.replace("./images/", "labels/")
                                                                          .rsplit(".", 1)[0] + ".txt"))
                                            for line in open(os.path.join(copy, "val.txt")).read().split()),
                          "latest": latest.id, "graph": Dataset.get(dataset_id="{cur["dataset_id"]}").get_dependency_graph()}}))
    """).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["train"] == view["split_counts"]["train"] and got["val_labels"] == view["split_counts"]["val"]
    assert "train: train.txt" in got["yaml"] and got["latest"] == view["dataset_id"]
    assert got["graph"][cur["dataset_id"]] == [raw["dataset_id"]]

    # Unchanged source: every version reused, nothing uploaded, no new version.
    again = _run(env, everything, _raw_cfg(env.src), instance=instance)
    for key, before in zip((RAW, CURATED, VIEW), (raw, cur, view)):
        after = _meta(again, key)
        assert after["dataset_id"] == before["dataset_id"] and after["reused_existing_version"] is True
        assert after["uploaded_bytes"] == 0 and after["content_hash"] == before["content_hash"]
    assert len(list_dataset_versions(env.client, PROJECT, "shapes_raw")) == 1

    # Change one image and add one: raw 1.1.0 is a child of 1.0.0 and uploads only those files.
    image, boxes = render_demo_image(500, seed=9, size=96)
    image.save(env.src / "images/shape_00003.png")
    (env.src / "labels/shape_00003.txt").write_text("".join(f"{c} {x} {y} {w} {h}\n" for c, x, y, w, h in boxes))
    generate_demo_dataset(env.src, images=1, seed=1, size=96, start=24)
    changed = sum((env.src / p).stat().st_size for p in ("images/shape_00003.png", "labels/shape_00003.txt",
                                                          "images/shape_00024.png", "labels/shape_00024.txt"))
    second = _run(env, [dg.AssetKey(list(RAW)), dg.AssetKey(list(CURATED))], _raw_cfg(env.src), instance=instance)
    raw2, cur2 = _meta(second, RAW), _meta(second, CURATED)
    assert raw2["dataset_version"] == "1.1.0" and raw2["parent_dataset_ids"] == raw["dataset_id"]
    assert raw2["uploaded_files"] == 4 + 0 and raw2["uploaded_bytes"] == changed
    assert cur2["dataset_version"] == "1.1.0" and cur2["parent_dataset_ids"] == raw2["dataset_id"]
    assert cur2["frames"] == 25


def test_external_version_is_observed_and_curated(env):
    instance = dg.DagsterInstance.ephemeral()
    first = _run(env, [dg.AssetKey(list(RAW))], _raw_cfg(env.src), instance=instance)
    raw = _meta(first, RAW)
    observation_key = dg.AssetKey(["datasets", "shapes_raw_clearml_latest"])
    obs_job = dg.define_asset_job("obs", selection=[observation_key])
    defs = dg.Definitions.merge(env.defs, dg.Definitions(jobs=[obs_job]))

    def observe() -> str:
        res = defs.resolve_job_def("obs").execute_in_process(instance=instance)
        assert res.success
        record = instance.fetch_observations(observation_key, limit=1).records[0]
        return record.asset_observation.tags["dagster/data_version"]

    assert observe() == raw["content_hash"]
    extra = env.tmp / "extra"
    generate_demo_dataset(extra, images=1, seed=1, size=96, start=40)
    out = env.sdk(f"""
        from clearml import Dataset
        ds = Dataset.create(dataset_name="shapes_raw", dataset_project="{PROJECT}", dataset_version="2.0.0",
                            parent_datasets=["{raw["dataset_id"]}"])
        ds.add_files("{extra}")
        ds.upload(); ds.finalize()
        print(ds.id)
    """).stdout.strip().splitlines()[-1]
    assert observe() == f"id:{out}"
    cur = _meta(_run(env, [dg.AssetKey(list(CURATED))], {}, instance=instance), CURATED)
    assert cur["raw_dataset_id"] == out and cur["frames"] == 25


@pytest.mark.slow
def test_bad_input_fails_without_leaving_a_version(env):
    (env.src / "labels/shape_00001.txt").write_text("0 0.5 0.5 0.2 0.2 0.7\n")
    (env.src / "labels/shape_00002.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    (env.src / "labels/shape_00004.txt").write_text("0 nan 0.5 0.2 0.2\n")
    (env.src / "images/shape_00005.png").write_bytes(b"not a png")
    instance = dg.DagsterInstance.ephemeral()
    result = _run(env, [dg.AssetKey(list(RAW))], _raw_cfg(env.src), instance=instance)
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["labels_valid"]
    assert not check.passed
    listed = check.metadata["files_at_fault"].value
    for name in ("shape_00001.txt", "shape_00002.txt", "shape_00004.txt", "shape_00005.png"):
        assert name in listed
    strict = {"datasets__shapes_curated": {"config": {"on_invalid": "fail"}}}
    with pytest.raises(DatasetValidationError, match="shape_00001.txt"):
        _run(env, [dg.AssetKey(list(CURATED))], strict, instance=instance)
    assert list_dataset_versions(env.client, PROJECT, "shapes_curated", finalized_only=False) == []
    lenient = _meta(_run(env, [dg.AssetKey(list(CURATED))], {}, instance=instance), CURATED)
    assert lenient["rejected_files"] == 4 and lenient["frames"] == 20 and "shape_00005.png" in lenient["rejected"]

    empty = env.tmp / "empty"
    empty.mkdir()
    with pytest.raises(DatasetValidationError, match="no images"):
        _run(env, [dg.AssetKey(list(RAW))], _raw_cfg(empty), instance=instance)
    with pytest.raises(DatasetValidationError, match="does not exist"):
        _run(env, [dg.AssetKey(list(RAW))], _raw_cfg(env.tmp / "missing"), instance=instance)
    assert len(list_dataset_versions(env.client, PROJECT, "shapes_raw", finalized_only=False)) == 1


def test_failed_upload_leaves_no_dataset(env):
    spec = {"name": "broken", "project": PROJECT, "version": "1.0.0", "parents": [],
            "folder": str(env.tmp / "vanished"), "tags": []}
    res = _resource(env.server, env.tmp / "res")
    with pytest.raises(SDKProcessError, match="vanished"):
        run_in_sdk_process("clearml_assets.datasets.sdk_ops:create_version", spec, env=res.sdk_env(), timeout=120)
    assert list_dataset_versions(env.client, PROJECT, "broken", finalized_only=False) == []
    env.sdk(f"""
        from clearml import Dataset
        try:
            Dataset.get(dataset_project="{PROJECT}", dataset_name="broken")
        except ValueError:
            print("not found")
        else:
            raise SystemExit("a failed draft is still returned by Dataset.get")
    """)


def test_unfinished_drafts_of_a_killed_child_are_deleted_and_others_kept(env):
    from clearml_assets.datasets.publish import discard_unfinished_drafts

    ids = env.sdk(f"""
        from clearml import Dataset
        ours = Dataset.create(dataset_name="drafty", dataset_project="{PROJECT}", dataset_version="1.0.0",
                              dataset_tags=["dagster", "content-sha256:abc"])
        theirs = Dataset.create(dataset_name="drafty", dataset_project="{PROJECT}", dataset_version="1.0.0")
        print(ours.id, theirs.id)
    """).stdout.strip().splitlines()[-1].split()
    drafts = {v.id: v for v in list_dataset_versions(env.client, PROJECT, "drafty", finalized_only=False)}
    assert set(drafts) == set(ids) and all(v.status not in ("completed", "published") for v in drafts.values())
    assert discard_unfinished_drafts(env.client, PROJECT, "drafty", "1.1.0", "content-sha256:abc") == []
    assert discard_unfinished_drafts(env.client, PROJECT, "drafty", "1.0.0", "content-sha256:abc") == [ids[0]]
    left = list_dataset_versions(env.client, PROJECT, "drafty", finalized_only=False)
    assert [v.id for v in left] == [ids[1]]


def test_blocking_check_stops_downstream(env):
    ran = []

    @dg.asset(key=["model_stub"], deps=[dg.AssetKey(list(VIEW))])
    def model_stub() -> None:
        ran.append(True)

    defs = dg.Definitions.merge(env.defs, dg.Definitions(assets=[model_stub]))
    instance = dg.DagsterInstance.ephemeral()
    config = {**_raw_cfg(env.src),
              "datasets__shapes_training_view": {"config": {"val_query": 'split == "val" and n_objects > 99'}}}
    result = _run(env, [dg.AssetKey(list(k)) for k in (RAW, CURATED, VIEW)] + [dg.AssetKey(["model_stub"])],
                  config, raise_on_error=False, instance=instance, defs=defs)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["splits_not_empty"] is False and checks["labels_valid"] is True
    assert ran == [] and not result.success
    assert _meta(result, VIEW)["split_counts"]["val"] == 0
