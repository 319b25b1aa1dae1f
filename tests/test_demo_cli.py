"""`clearml-assets demo` as a newcomer runs it (console script, venv not on PATH): a short output with one line per
stage and no library noise, the archive check run, a summary naming the export folder, metrics.json, the archive
and the local server left running; then every command it prints, run verbatim as printed (status, ui, stop)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from clearml_assets.local_server import free_port

from conftest import stop_embedded_server

BIN = Path(sys.executable).parent
NOISE = ["Warning", "WARNING", "DEBUG", "Telemetry", "ultralytics.nn", "Could not repair", "Traceback", "\x1b[",
         "it/s", "STEP_START"]


def printed(out: str, label: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.strip().startswith(label))
    return shlex.split(line.strip()[len(label):].strip())


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_is_quiet_and_its_printed_commands_work_verbatim(tmp_path: Path):
    home = tmp_path / "home"
    ui_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLEARML_", "TRAINS_", "DAGSTER_", "VIRTUAL_ENV"))}
    env.update({"PATH": "/usr/bin:/bin", "CLEARML_ASSETS_UI_PORT": str(ui_port),
                "CLEARML_ASSETS_LOCAL_API_PORT": "0", "CLEARML_ASSETS_LOCAL_FILES_PORT": "0",
                "CLEARML_ASSETS_LOCAL_WEB_PORT": "0", "CLEARML_ASSETS_ARCHIVE_CRON": "off"})
    try:
        proc = subprocess.run([str(BIN / "clearml-assets"), "demo", "--home", str(home), "--epochs", "1",
                               "--images", "24", "--imgsz", "64"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=1200)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-5000:]
        lines = out.splitlines()
        assert len(lines) <= 30, out
        assert not [n for n in NOISE if n in out], out
        # one line per stage, with its checks
        for stage in ("datasets/shapes_raw", "datasets/shapes_curated", "datasets/shapes_training_view",
                      "training/shapes_yolo", "local/clearml_task_archive"):
            assert sum(1 for line in lines if line.startswith(f"  done   {stage} ")) == 1, stage
        assert re.search(r"^  check  local/clearml_task_archive .* archive_matches_manifest passed$", out, re.M), out
        assert "archive check:           archive_matches_manifest passed" in out

        summary = {m.group(1): m.group(2) for m in re.finditer(r"^  ([a-z0-9. ]+):\s+(.+)$", out, re.M)}
        folder = Path(summary["export folder"])
        assert folder.is_dir() and (home / "exports").resolve() in folder.resolve().parents
        assert Path(summary["metrics.json"]) == folder / "metrics.json" and (folder / "metrics.json").is_file()
        assert Path(summary["archive"].split(" (sha256")[0]).is_file()
        assert Path(summary["demo log"]).is_file() and "Ultralytics" in Path(summary["demo log"]).read_text()

        # the task link in the summary opens the local server's web view (the key pair signs in)
        creds = json.loads((home / "server" / "credentials.json").read_text())[0]
        task_link = summary["training task"].split()[1]
        page = requests.get(task_link, auth=(creds["access_key"], creds["secret_key"]), timeout=60)
        assert page.status_code == 200 and "shapes_yolo training" in page.text

        # the SDK settings it prints: a clearml.conf that is all a ClearML SDK needs to reach the local server
        sdk_line = next(line for line in lines if line.startswith("  SDK:       export CLEARML_CONFIG_FILE="))
        conf = shlex.split(sdk_line.split("=", 1)[1])[0]
        assert Path(conf) == home.resolve() / "server" / "clearml.conf"
        task_id = summary["training task"].split()[0]
        sdk = subprocess.run([sys.executable, "-c", "from clearml import Task; import sys; "
                              "print('NAME', Task.get_task(task_id=sys.argv[1]).name)", task_id],
                             env={**env, "CLEARML_CONFIG_FILE": conf, "HOME": str(tmp_path / "sdkhome")},
                             capture_output=True, text=True, timeout=180)
        assert "NAME shapes_yolo training" in sdk.stdout, sdk.stdout + sdk.stderr[-3000:]

        check = printed(out, "check it:")
        assert check[0] == str(BIN / "clearml-assets")  # works without the venv on PATH
        status = subprocess.run(check, env=env, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0 and status.stdout.startswith("healthy"), status.stdout + status.stderr
        pid = int(re.search(r"pid (\d+)", status.stdout).group(1))

        ui = shlex.split(lines[lines.index("See the runs, assets and checks in the Dagster UI:") + 1].strip())
        assert ui[:2] == [str(BIN / "clearml-assets"), "ui"]
        ui_proc = subprocess.Popen(ui, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{ui_port}"
            deadline = time.monotonic() + 240
            while True:
                assert ui_proc.poll() is None, ui_proc.stdout.read()[-4000:]
                try:
                    if requests.get(f"{url}/server_info", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "the printed ui command did not serve the Dagster UI"
                time.sleep(1)
            query = "{ runsOrError { ... on Runs { results { status } } } }"
            runs = requests.post(f"{url}/graphql", json={"query": query}, timeout=60).json()
            statuses = [r["status"] for r in runs["data"]["runsOrError"]["results"]]
            assert statuses == ["SUCCESS", "SUCCESS"]  # the demo's two runs: same DAGSTER_HOME
            # the same local server, not a second empty one
            status = subprocess.run(check, env=env, capture_output=True, text=True, timeout=120)
            assert f"pid {pid}," in status.stdout
        finally:
            os.killpg(ui_proc.pid, signal.SIGTERM)
            try:
                ui_proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(ui_proc.pid, signal.SIGKILL)
                ui_proc.wait(10)
        ui_out = ui_proc.stdout.read()
        assert f"Dagster UI: open {url} in a browser" in ui_out

        stop = subprocess.run(printed(out, "stop it:"), env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0 and f"(pid {pid})" in stop.stdout, stop.stdout + stop.stderr
        after = subprocess.run(check, env=env, capture_output=True, text=True, timeout=120)
        assert after.returncode == 3 and after.stdout.startswith("not running")
    finally:
        stop_embedded_server(home)
