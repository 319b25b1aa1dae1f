"""The Dagster UI in a real headless Chromium: asset groups, a launch from the UI, the archive's metadata.

``dagster dev`` runs on loopback against a temporary ``DAGSTER_HOME`` with the project's own
definitions (``workspace.yaml``'s module) and an account ``acme`` on a local ClearML server. Chromium is
Debian's (``/usr/bin/chromium``, installed by ``.ci/run``), driven by Playwright without its own browser
download. Screenshots land in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from chromium import BROWSER_MARKS, chromium_page, screenshots
from seeding import DemoSpec, RawSeeder
from clearml_assets.local_server import free_port

ACCOUNT = "acme"
UI_TIMEOUT_MS = 90_000
SPEC = DemoSpec(scalar_series=6, points_per_series=40, log_lines=30, artifacts=2, artifact_bytes=4096, plots=1,
                debug_images=1)

pytestmark = BROWSER_MARKS


@pytest.fixture
def seeded_task(clearml_server) -> str:
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    return seeder.seed_task(seeder.project("ui demo"), "ui demo", "yolo run for the UI", SPEC)


@pytest.fixture
def second_task(clearml_server) -> str:
    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    return seeder.seed_task(seeder.project("ui demo"), "ui demo", "second yolo run", SPEC)


@pytest.fixture
def dagster_env(clearml_server, tmp_path: Path) -> dict[str, str]:
    info = clearml_server.info
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "DAGSTER_"))}
    suffix = ACCOUNT.upper()
    env.update({
        "DAGSTER_HOME": str(home), "CLEARML_ASSETS_HOME": str(tmp_path / "clearml_assets_home"),
        "CLEARML_ASSETS_DEFAULT_ACCOUNT": ACCOUNT,
        f"CLEARML_KEY_{suffix}": info.access_key, f"CLEARML_SECRET_{suffix}": info.secret_key,
        f"CLEARML_API_HOST_{suffix}": info.api_host, f"CLEARML_WEB_HOST_{suffix}": info.web_host,
        f"CLEARML_FILES_HOST_{suffix}": info.files_host,
    })
    return env


@pytest.fixture
def dagster_ui(dagster_env, tmp_path: Path):
    port = free_port()
    log = (tmp_path / "dagster_dev.log").open("w")
    dagster = str(Path(sys.executable).with_name("dagster"))
    proc = subprocess.Popen([dagster, "dev", "-w", str(Path(__file__).resolve().parents[1] / "workspace.yaml"),
                             "-h", "127.0.0.1", "-p", str(port)],
                            cwd=Path(__file__).resolve().parents[1], env=dagster_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                output = (tmp_path / "dagster_dev.log").read_text()[-4000:]
                pytest.fail(f"dagster dev exited ({proc.returncode}):\n{output}")
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail("dagster dev did not answer within 120 s")
            time.sleep(0.5)
        # What "Skip" on Dagster's newsletter dialog does; else it opens over the page at a random moment.
        requests.post(f"{url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=30).raise_for_status()
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


@pytest.fixture
def browser_page(tmp_path: Path):
    with chromium_page(UI_TIMEOUT_MS, ("--disable-quic",), viewport={"width": 1600, "height": 1000}) as page:
        yield page


shot = screenshots("ui")


def wait_for_partition_materialized(home: str, account: str, task_id: str, timeout: float = 240) -> dict:
    import dagster as dg

    from clearml_assets.archives.assets import task_archive_key

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while time.monotonic() < deadline:
            records = instance.fetch_materializations(task_archive_key(account), limit=5).records
            for record in records:
                if record.asset_materialization.partition == task_id:
                    return record.asset_materialization.metadata
            failed = [r for r in instance.get_run_records() if r.dagster_run.status.value == "FAILURE"]
            assert not failed, f"run {failed[0].dagster_run.run_id} failed"
            time.sleep(2)
    pytest.fail(f"no materialization of partition {task_id} within {timeout:.0f} s")


def body_text(page) -> str:
    return re.sub(r"\s+", " ", page.inner_text("body"))


def wait_for_text(page, pattern: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = body_text(page)
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"{pattern!r} not on {page.url} within {timeout:.0f} s; page says: {text[:1500]}")
        page.wait_for_timeout(500)


def check_evaluations(home: str) -> tuple[list[str], list[tuple[bool, int]]]:
    """Every run's status, and every archive check evaluation's result and number of partitions checked."""
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
        evaluations = [e.dagster_event.event_specific_data for run in runs
                       for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        passed = [(ev.passed, getattr(ev.metadata.get("partitions_checked"), "value", 1)) for ev in evaluations]
        return [run.status.value for run in runs], passed


def test_ui_shows_every_group_backfills_two_archives_and_shows_their_metadata(
        dagster_ui, browser_page, seeded_task, second_task, dagster_env, clearml_server):
    import dagster as dg

    from clearml_assets.definitions import build_definitions
    from clearml_assets.resource import ClearMLResource

    page = browser_page
    with dg.DagsterInstance.from_config(dagster_env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions(f"clearml_tasks_{ACCOUNT}", [seeded_task, second_task])
    with pytest.MonkeyPatch.context() as env:
        for name, value in dagster_env.items():
            env.setenv(name, value)
        defs = build_definitions(ClearMLResource.from_env())
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    keys = [key.to_user_string().replace("/", " / ") for key in graph.get_all_asset_keys()
            if not graph.get(key).is_external]
    assert {"datasets", "training", "clearml_archives"} <= groups

    page.goto(f"{dagster_ui}/asset-groups")
    text = wait_for_text(page, "|".join(sorted(groups)))
    for group in groups:
        page.get_by_text(group, exact=True).first.wait_for()
    shot(page, "01_asset_groups")

    page.goto(f"{dagster_ui}/assets")
    text = wait_for_text(page, re.escape(keys[0]))
    missing = [key for key in keys if key not in text]
    assert not missing, f"catalog lacks {missing}"
    shot(page, "02_catalog")

    # a backfill of both task partitions, launched from the UI (one run over the range: the backfill policy)
    page.goto(f"{dagster_ui}/assets/{ACCOUNT}/clearml_task_archive")
    page.get_by_role("button", name=re.compile("Materialize")).first.click()
    page.get_by_role("button", name="All", exact=True).click()
    wait_for_text(page, "2 partitions")
    shot(page, "03a_backfill_dialog")
    page.get_by_role("button", name=re.compile(r"^Launch (1 run|backfill)$")).click()
    wait_for_partition_materialized(dagster_env["DAGSTER_HOME"], ACCOUNT, seeded_task)
    wait_for_partition_materialized(dagster_env["DAGSTER_HOME"], ACCOUNT, second_task)
    deadline = time.monotonic() + 120
    while True:
        statuses, passed = check_evaluations(dagster_env["DAGSTER_HOME"])
        if statuses and all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses):
            break
        assert time.monotonic() < deadline, f"runs still going: {statuses}"
        time.sleep(2)
    assert statuses and all(s == "SUCCESS" for s in statuses), statuses
    # one evaluation per run covers the run's partition range: together they checked both partitions
    assert passed and all(ok for ok, _ in passed), passed
    assert sum(count for _, count in passed) >= 2, passed

    page.goto(f"{dagster_ui}/runs")
    wait_for_text(page, "Success")
    assert "Failure" not in body_text(page)
    shot(page, "03_run_launched_from_ui")

    # the asset page shows the latest materialization: whichever partition of the range was written last
    with dg.DagsterInstance.from_config(dagster_env["DAGSTER_HOME"]) as instance:
        from clearml_assets.archives.assets import task_archive_key

        latest = instance.fetch_materializations(task_archive_key(ACCOUNT), limit=1).records[0]
        metadata = latest.asset_materialization.metadata
        latest_task = latest.asset_materialization.partition
    assert latest_task in (seeded_task, second_task)
    page.goto(f"{dagster_ui}/assets/{ACCOUNT}/clearml_task_archive")
    text = wait_for_text(page, "task_link")
    task_link = metadata["task_link"].value
    assert latest_task in task_link and task_link in text
    for key in ("scalar_points", "log_lines", "files", "archive_sha256"):
        assert re.search(rf"{key} .*?{re.escape(str(metadata[key].value))}", text), key
    assert metadata["scalar_points"].value == SPEC.scalar_series * SPEC.points_per_series
    assert metadata["log_lines"].value == SPEC.log_lines
    rows = re.search(r"metric series last max source (.*?) Lineage", text).group(1)
    for metric in ("mAP50", "mAP50-95", "precision", "recall", "F1"):
        assert metric in rows
    page.get_by_text("metrics", exact=True).first.scroll_into_view_if_needed()
    shot(page, "04_archive_metadata")

    page.get_by_role("tab", name="Checks").click()
    wait_for_text(page, r"archive_matches_manifest Succeeded")
    assert "Failed" not in body_text(page)
    shot(page, "05_archive_check")

    # the task link of the materialization opens the local server's web view (sign in with its key pair)
    assert task_link.startswith(clearml_server.info.web_host + "/projects/")
    page.goto(task_link)
    page.fill("input[name=access_key]", clearml_server.info.access_key)
    page.fill("input[name=secret_key]", clearml_server.info.secret_key)
    page.click("button[type=submit]")
    wait_for_text(page, "yolo run for the UI" if latest_task == seeded_task else "second yolo run")
    assert page.url == task_link
    page.goto(task_link.replace("/output/execution", "/output/metrics/scalar"))
    page.wait_for_function("document.querySelectorAll('.chart .main-svg').length >= 1")
    shot(page, "06_web_view_from_task_link")
