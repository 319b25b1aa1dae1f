"""Task ids per run: ``CLEARML_ASSETS_PARTITIONS_PER_RUN`` sets the task archive's backfill batches and the
sensor's batched runs (a Dagster run costs seconds before any work; big backfills want big batches)."""

from __future__ import annotations

import pytest

from clearml_assets.archives.defs import build_archive_defs, partitions_per_run
from clearml_assets.automation.defs import build_automation_defs
from clearml_assets.errors import ClearMLConfigError


def test_default_and_environment():
    assert partitions_per_run({}) == 25
    assert partitions_per_run({"CLEARML_ASSETS_PARTITIONS_PER_RUN": " 250 "}) == 250


@pytest.mark.parametrize("raw", ["0", "-3", "many", "2.5"])
def test_a_bad_value_names_the_variable(raw):
    with pytest.raises(ClearMLConfigError, match="CLEARML_ASSETS_PARTITIONS_PER_RUN"):
        partitions_per_run({"CLEARML_ASSETS_PARTITIONS_PER_RUN": raw})


def test_backfill_policy_and_sensor_batches_follow_the_setting(monkeypatch):
    monkeypatch.setenv("CLEARML_ASSETS_PARTITIONS_PER_RUN", "250")
    task_asset = next(a for a in build_archive_defs(["acme"]).assets if "task" in a.key.to_user_string())
    assert task_asset.backfill_policy.max_partitions_per_run == 250
    assert build_archive_defs(["acme"], max_partitions_per_run=7).assets[0].backfill_policy.max_partitions_per_run == 7
    defs = build_automation_defs(["acme"], environ={"CLEARML_ASSETS_PARTITIONS_PER_RUN": "40"})
    sensors = {s.name: s for s in defs.sensors}
    assert sorted(sensors) == ["clearml_completed_tasks_sensor_acme", "clearml_missing_archives_sensor_acme"]
    assert "up to 40 new tasks to a run" in sensors["clearml_completed_tasks_sensor_acme"].description
    assert "ranged runs of up to 40 consecutive partitions" in sensors["clearml_missing_archives_sensor_acme"].description
