"""The page-at-a-time fast paths of the exporter write exactly what the event-by-event paths write."""

from __future__ import annotations

import io

from clearml_assets.archives.events import _Seen
from clearml_assets.archives.logs import ConsoleText, LogResult, _write_page

PLAIN = ["", "a", "b\n", "c\nd", "e\n\n", "\n", "f\ng\nh\n", "tail without newline", "x", "y\n", "\n\n"]


def _one_by_one(msgs: list[str]) -> tuple[bytes, int]:
    out = io.BytesIO()
    console = ConsoleText(out)
    for msg in msgs:
        console.add(msg)
    console.close()
    return out.getvalue(), console.lines


def test_plain_page_gives_the_console_text_of_adding_line_by_line():
    for cut in range(len(PLAIN) + 1):  # any split into two pages, and a page of special text after them
        out = io.BytesIO()
        console = ConsoleText(out)
        console.add_plain(PLAIN[:cut])
        console.add_plain(PLAIN[cut:])
        console.add("\rrewritten\n")
        console.close()
        assert (out.getvalue(), console.lines) == _one_by_one([*PLAIN, "\rrewritten\n"])


def test_a_page_holds_every_line_in_the_three_files_and_counts_text_that_is_not_utf8():
    events = [{"timestamp": i, "level": "info" if i % 3 else "error", "worker": "w", "msg": m}
              for i, m in enumerate(PLAIN + ["\x1b[1mbold\x1b[0m", "bad \udcff byte", None, 7])]
    raw, jsonl, text = io.BytesIO(), io.BytesIO(), io.BytesIO()
    console, result = ConsoleText(text), LogResult()
    _write_page(events, result, raw, jsonl, console)
    console.close()
    assert result.events == len(events) and result.replaced_lines == 1
    assert result.levels == {"info": 10, "error": 5}
    assert raw.getvalue().startswith(b"\na\nb\nc\nd\ne\n\n") and b"bad \\udcff byte\n" in raw.getvalue()
    assert len(jsonl.getvalue().splitlines()) == len(events)
    assert text.getvalue().decode().splitlines()[-3:] == ["bad \\udcff byte", "", "7"]
    assert "bold" in text.getvalue().decode() and "\x1b" not in text.getvalue().decode()


def test_a_page_past_the_last_iteration_is_taken_whole_and_a_repeat_is_not():
    seen = _Seen()
    first = [{"iter": 1, "v": 1}, {"iter": 2, "v": 2}]
    assert seen.all_new(first)
    seen.close_page(first)
    assert seen.all_new([{"iter": 3}, {"iter": 4}])
    assert not seen.all_new([{"iter": 2, "v": 3}, {"iter": 3}])  # iteration 2 again: checked event by event
    assert seen.is_new({"iter": 2, "v": 3}) and not seen.is_new({"iter": 2, "v": 2})


def test_a_big_projects_metrics_table_shows_the_first_hundred_tasks_and_says_so(tmp_path):
    from clearml_assets.archives.assets import METRICS_TABLE_ROWS, project_metadata
    from clearml_assets.archives.exporter import ProjectExportResult, TaskExportResult

    tasks = [TaskExportResult(f"{i:032x}", f"t{i}", "p", tmp_path, tmp_path / "a.zip",
                              {"picked_metrics": {"mAP50": {"last": i / 1000}}}, False, 0.1)
             for i in range(METRICS_TABLE_ROWS + 50)]
    meta = project_metadata(ProjectExportResult("p" * 32, "p", tmp_path, tmp_path / "p.zip", {}, tasks))
    assert len(meta["metrics"].records) == METRICS_TABLE_ROWS and meta["tasks"] == METRICS_TABLE_ROWS + 50
    assert f"first {METRICS_TABLE_ROWS} of {METRICS_TABLE_ROWS + 50}" in meta["metrics_rows"]
    small = project_metadata(ProjectExportResult("p" * 32, "p", tmp_path, tmp_path / "p.zip", {}, tasks[:3]))
    assert len(small["metrics"].records) == 3 and "metrics_rows" not in small


def test_task_documents_in_one_call_equal_each_tasks_get_by_id(clearml_server):
    """A backfill run reads its tasks' documents with ``tasks.get_all`` a hundred ids at a time: what it gets must be
    what ``tasks.get_by_id`` gives, for every task (a missing id is left out)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from seeding import DemoSpec, RawSeeder, client_of

    from clearml_assets.archives.exporter import ClearMLTaskExporter

    seeder = RawSeeder.of(clearml_server)
    spec = DemoSpec(scalar_series=2, points_per_series=3, log_lines=2, artifacts=1, artifact_bytes=64, plots=1,
                    debug_images=1)
    ids = seeder.seed_project("documents", 3, spec, workers=1)
    client = client_of(clearml_server)
    exporter = ClearMLTaskExporter(client, "personal", clearml_server.data_dir / "unused")
    before = client.calls
    documents = exporter.task_documents([*ids, "0" * 32], chunk=2)
    assert client.calls - before == 2 and sorted(documents) == sorted(ids)
    for task_id in ids:
        assert documents[task_id] == client.tasks.get(task_id).raw
    exporter.close()


def test_stale_leftovers_are_removed_and_a_folder_is_listed_once_an_hour(tmp_path, monkeypatch):
    import os
    import time

    from clearml_assets.archives import publish

    old = time.time() - publish.STALE_SECONDS - 60
    for name in (".partial.t1.abc", ".partial.t1.zip.abc", ".partial.t2.abc"):
        (tmp_path / name).mkdir() if not name.endswith("zip.abc") else (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".partial.t1.fresh").mkdir()  # an export still running: kept
    listings = []
    real_scandir = os.scandir
    monkeypatch.setattr(publish.os, "scandir", lambda p: listings.append(p) or real_scandir(p))
    publish.clean_stale(tmp_path, "t1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial.t1.fresh", ".partial.t2.abc"]
    publish.clean_stale(tmp_path, "t2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial.t1.fresh"]
    assert listings.count(tmp_path) == 1  # the second export into the folder did not list it again


def test_a_big_batch_logs_its_summary_instead_of_a_line_a_task_and_reads_documents_in_one_call(clearml_server,
                                                                                                 tmp_path):
    """A log line is a row in Dagster's event log (a PostgreSQL connection each on dagster-postgres): a run of more
    than ten tasks logs one summary; its tasks' documents come in one ``tasks.get_all``, the models they created in
    one ``models.get_all``."""
    import sys
    from pathlib import Path

    import dagster as dg

    sys.path.insert(0, str(Path(__file__).parent))
    from seeding import DemoSpec, RawSeeder

    from clearml_assets.archives.assets import (LOGGED_TASKS, build_clearml_task_archive_asset,
                                                clearml_task_partitions, task_archive_key)
    from clearml_assets.client import ClearMLSession
    from clearml_assets.resource import ClearMLResource

    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    project = seeder.project("batch")
    ids = sorted(seeder.seed_task(project, "batch", f"batch task {i}", DemoSpec(1, 2, 2, 0, 0, 0, 0))
                 for i in range(LOGGED_TASKS + 2))
    resource = ClearMLResource.for_local_server(info, home=str(tmp_path / "res"))
    account = resource.default_account
    calls: list[str] = []
    original = ClearMLSession.call

    def counted(client, endpoint, **fields):
        calls.append(endpoint)
        return original(client, endpoint, **fields)

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(clearml_task_partitions(account).name, ids)
        ClearMLSession.call = counted
        try:
            result = dg.materialize(
                [build_clearml_task_archive_asset(account)], instance=instance, resources={"clearml": resource},
                run_config={"ops": {task_archive_key(account).to_python_identifier():
                                    {"config": {"export_root": str(tmp_path / "exports")}}}},
                tags={"dagster/asset_partition_range_start": ids[0], "dagster/asset_partition_range_end": ids[-1]})
        finally:
            ClearMLSession.call = original
        assert result.success
        messages = [e.message for e in instance.all_logs(result.run_id) if e.user_message and "task" in e.user_message]
        assert any(f"{len(ids)} of {len(ids)} tasks archived" in m for m in messages)
        assert not any(m and "exported ->" in m for m in messages)
    # documents and created models one query each for the batch; no re-read (nothing was missing); the project once
    assert calls.count("tasks.get_all") == 1 and calls.count("models.get_all") == 1
    assert calls.count("tasks.get_by_id") == 0 and calls.count("projects.get_by_id") == 1


def test_check_evaluations_of_a_range_are_stored_on_a_kept_connection(dagster_instance):
    """dagster-postgres connects for every event it stores; a run's archive steps store theirs on one kept
    connection instead (counted with SQLAlchemy's pool events: every new DBAPI connection, on a real server)."""
    import dagster as dg
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    from clearml_assets.archives.assets import keep_event_log_connection

    postgres = "postgres" in type(dagster_instance.event_log_storage).__name__.lower()
    opened = []

    def store_evaluations(n: int) -> int:
        opened.clear()
        for i in range(n):
            dagster_instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("archive"), check_name="archive_matches_manifest", passed=True,
                metadata={"i": i}))
        return len(opened)

    def count(*_):
        opened.append(1)

    event.listen(Pool, "connect", count)
    try:
        before = store_evaluations(10)
        keep_event_log_connection(dagster_instance)
        keep_event_log_connection(dagster_instance)  # once per storage: the kept engine is not replaced again
        after = store_evaluations(10)
    finally:
        event.remove(Pool, "connect", count)
    if postgres:
        assert before >= 10 and after <= 1, (before, after)
    rows = dagster_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("archive"), "archive_matches_manifest"), limit=100)
    assert len(rows) == 20  # every evaluation stored, before and after
