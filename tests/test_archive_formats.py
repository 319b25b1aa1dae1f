"""Every archive format in the format table, end to end: export, verify, incremental skip and restore read."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.archives.packing import ARCHIVE_FORMATS, verify_archive
from clearml_assets.client import ClearMLClient
from clearml_assets.errors import ArchiveError
from clearml_assets.restore.reader import open_archive

from seeding import DemoSpec, RawSeeder, client_of

SPEC = DemoSpec(scalar_series=2, points_per_series=30, log_lines=20, artifacts=1, artifact_bytes=4096, plots=1,
                debug_images=1)


@pytest.fixture
def seeded(clearml_server) -> tuple[ClearMLClient, str]:
    task_id = RawSeeder.of(clearml_server).seed_project("formats", 1, SPEC, workers=1)[0]
    return client_of(clearml_server), task_id


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_each_format_exports_verifies_skips_and_restores(seeded, tmp_path: Path, fmt: str):
    client, task_id = seeded
    exporter = ClearMLTaskExporter(client, "personal", tmp_path / "exports", archive_format=fmt, max_workers=2)
    result = exporter.export_task(task_id)
    assert result.archive.name.endswith("." + fmt) and result.manifest["archive"]["format"] == fmt
    assert verify_archive(result.archive, result.manifest) == []
    assert result.counts["scalar_points"] == 60 and result.counts["log_lines"] == 20
    assert exporter.export_task(task_id).skipped  # the same format is current
    with open_archive(result.archive, workdir=tmp_path) as tasks:
        assert [t.info["task"]["id"] for t in tasks] == [task_id]


def test_an_unknown_format_is_refused_before_any_call(seeded, tmp_path: Path):
    client, _ = seeded
    with pytest.raises(ArchiveError, match="unknown archive format 'rar'.*zip"):
        ClearMLTaskExporter(client, "personal", tmp_path, archive_format="rar")
