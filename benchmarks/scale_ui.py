"""bench_scale's UI phase: the task archive's partitions page, Dagster's own backfill of the missing partitions, and
the same launched by turning the missing-archives sensor on, timed in Chromium."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from scale_deploy import ACCOUNT, ROOT, TASK_ASSET, Deployment, dagster_dev, graphql, load, say

def run_ui(deploy: Deployment, partitions: int, dialog_timeout: float = 600) -> dict:
    """The task archive's partitions page, Dagster's backfill of its missing partitions, and the same launched by
    turning the missing-archives sensor on, timed in Chromium."""
    from chromium import CHROMIUM, chromium_page

    if not CHROMIUM.is_file():
        say(f"ui: no Chromium at {CHROMIUM} (apt-get install chromium); skipped")
        return {}
    out: dict[str, Any] = {}
    shots = ROOT / "test-artifacts" / "bench_scale_ui"
    shots.mkdir(parents=True, exist_ok=True)
    with dagster_dev(deploy, 0, deploy.work / "dagster_dev_ui.log") as url, \
            chromium_page(600_000, ("--disable-quic",), viewport={"width": 1600, "height": 1000}) as page:
        say(f"ui: {partitions:,} partitions; opening the asset's partitions page; {load()}")
        started = time.perf_counter()
        page.goto(f"{url}/assets/{'/'.join(TASK_ASSET)}?view=partitions")
        page.get_by_text(f"{partitions:,}").first.wait_for()
        out["partitions_page"] = time.perf_counter() - started
        page.screenshot(path=str(shots / "partitions.png"))
        say(f"ui: partitions page showed {partitions:,} partitions after {out['partitions_page']:.1f} s; {load()}")
        try:
            out.update(_launch_missing(page, url, shots, dialog_timeout))
            say(f"ui: backfill of the missing partitions: dialog {out['dialog']:.1f} s, launch "
                f"{out['launch']:.1f} s ({out.get('backfill_partitions', '?')} partitions requested); {load()}")
        except Exception as exc:  # noqa: BLE001 - Dagster's dialog at this size: reported, then the sensor's way
            say(f"ui: Dagster's 'Failed and missing' backfill could not be launched: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}; {load()}")
        out.update(_launch_with_sensor(page, url, shots))
        say(f"ui: the missing-archives sensor turned on in the UI: first runs queued {out['sensor_launch']:.1f} s "
            f"after the click ({out['sensor_runs']} runs, {out['sensor_partitions']:,} partitions, ranged); "
            f"{load()}")
    return out


MISSING_SENSOR = f"clearml_missing_archives_sensor_{ACCOUNT}"


def _launch_with_sensor(page, url: str, shots: Path) -> dict:
    """Turn the missing-archives sensor on from its page, as a person does; timed until its first runs are queued
    (the UI level's run queue starts none). Then it is turned off again and its queued runs cancelled."""
    page.goto(f"{url}/locations/clearml_assets.definitions/sensors/{MISSING_SENSOR}")
    page.get_by_text("Running", exact=True).first.wait_for()
    toggle = page.locator("input[type=checkbox]").first
    started = time.perf_counter()
    toggle.click()
    deadline = time.monotonic() + 600
    while not (runs := _sensor_runs(url)):
        if time.monotonic() > deadline:
            raise SystemExit("the missing-archives sensor requested no run within 600 s")
        time.sleep(0.5)
    out = {"sensor_launch": time.perf_counter() - started, "sensor_runs": len(runs),
           "sensor_partitions": sum(int(r["tags"].get("clearml/tasks", 1)) for r in runs)}
    page.reload()
    page.get_by_text("Running", exact=True).first.wait_for()
    page.screenshot(path=str(shots / "missing_sensor.png"))
    page.locator("input[type=checkbox]").first.click()  # off again
    graphql(url, "mutation($ids: [String!]!) { terminateRuns(runIds: $ids) { __typename } }",
            {"ids": [r["runId"] for r in _sensor_runs(url)]})
    return out


def _sensor_runs(url: str) -> list[dict]:
    data = graphql(url, "query($v: String!) { runsOrError(filter: {tags: [{key: \"clearml/launcher\", value: $v}]}) "
                        "{ ... on Runs { results { runId status tags { key value } } } } }", {"v": MISSING_SENSOR})
    return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in data["runsOrError"]["results"]]


def _launch_missing(page, url: str, shots: Path, dialog_timeout: float) -> dict:
    """Materialize... > Failed and missing > Launch backfill, as a person does; timed until the backfill exists."""
    import re

    from playwright.sync_api import expect

    out: dict[str, Any] = {}
    before = _backfill_ids(url)
    started = time.perf_counter()
    page.get_by_role("button", name=re.compile("Materialize")).first.click()
    page.get_by_role("button", name="Failed and missing", exact=True).click()
    launch = page.get_by_role("button", name=re.compile(r"^Launch (\d+ runs?|backfill)$")).first
    expect(launch).to_be_enabled(timeout=dialog_timeout * 1000)
    out["dialog"] = time.perf_counter() - started
    page.screenshot(path=str(shots / "launch_dialog.png"))
    started = time.perf_counter()
    launch.click()
    deadline = time.monotonic() + 600
    while not (new := [b for b in _backfill_ids(url) if b["id"] not in before]):
        if time.monotonic() > deadline:
            raise SystemExit("the UI launched no backfill within 600 s")
        time.sleep(0.5)
    out["launch"] = time.perf_counter() - started
    out["backfill_partitions"] = new[0]["numPartitions"]
    page.screenshot(path=str(shots / "launched.png"))
    graphql(url, "mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }",
            {"id": new[0]["id"]})
    return out


def _backfill_ids(url: str) -> list[dict]:
    data = graphql(url, "{ partitionBackfillsOrError(limit: 5) { ... on PartitionBackfills { results { id "
                        "numPartitions status } } } }")
    return data["partitionBackfillsOrError"]["results"]
