"""One translator maps every capability's asset keys and groups: datasets, the model, each account's archives;
the jobs, dependencies and checks follow it, and an archive materializes and checks under its translated key."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from clearml_assets.archives.assets import clearml_task_partitions
from clearml_assets.automation.jobs import clearml_archive_job_name
from clearml_assets.definitions import build_definitions
from clearml_assets.resource import ClearMLResource
from clearml_assets.translator import DagsterClearMLTranslator

from seeding import DemoSpec, RawSeeder


class TeamTranslator(DagsterClearMLTranslator):
    def get_dataset_asset_key(self, dataset):
        return dg.AssetKey(["vision", "data", dataset.stage])

    def get_model_asset_key(self, model):
        return dg.AssetKey(["vision", "models", model.name])

    def get_model_group_name(self, model):
        return "vision_models"

    def get_archive_asset_key(self, archive):
        return dg.AssetKey(["backups", archive.account, f"{archive.kind}s"])

    def get_archive_group_name(self, archive):
        return f"backups_{archive.account}"


def test_one_translator_maps_every_capability(clearml_server, tmp_path: Path):
    resource = ClearMLResource.for_local_server(clearml_server.info, home=str(tmp_path / "home"))
    account = resource.default_account
    defs = build_definitions(resource, translator=TeamTranslator())
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"vision/data/raw", "vision/data/training_view", "vision/models/shapes_yolo",
            f"backups/{account}/tasks", f"backups/{account}/projects"} <= keys
    assert not any(k.startswith(("datasets/", "training/")) or k.endswith("clearml_task_archive") for k in keys)
    model = graph.get(dg.AssetKey(["vision", "models", "shapes_yolo"]))
    assert model.group_name == "vision_models"
    assert dg.AssetKey(["vision", "data", "training_view"]) in model.parent_keys
    tasks_key = dg.AssetKey(["backups", account, "tasks"])
    assert graph.get(tasks_key).group_name == f"backups_{account}"
    assert dg.AssetCheckKey(tasks_key, "archive_matches_manifest") in graph.asset_check_keys
    job = defs.resolve_job_def(clearml_archive_job_name(account))
    assert job.asset_layer.selected_asset_keys == {tasks_key}
    training_job = defs.resolve_job_def("clearml_training_job")
    assert dg.AssetKey(["vision", "models", "shapes_yolo"]) in training_job.asset_layer.selected_asset_keys

    task_id = RawSeeder.of(clearml_server).seed_project("translated", 1, DemoSpec(1, 10, 5, 0, 0, 0, 0), workers=1)[0]
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(clearml_task_partitions(account).name, [task_id])
        result = job.execute_in_process(instance=instance, partition_key=task_id)
        record = instance.fetch_materializations(tasks_key, limit=1).records[0]
    assert result.success
    assert record.asset_materialization.metadata["scalar_points"].value == 10
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_key == tasks_key and evaluation.passed
