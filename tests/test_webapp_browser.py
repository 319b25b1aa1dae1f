"""The real ClearML web app on the local server, driven in headless Chromium.

A clearml-web production build (``../shared/clearml-web/build`` beside the repository, or ``CLEARML_WEB_BUILD``)
is served by ``LocalServer(web_app=...)`` as clearml-server serves it; the real ClearML SDK (in a subprocess) logs
a task with scalars, a plot, a debug image, console text, an artifact, hyperparameters, a configuration object and
a model; the test signs in with the server's key pair and walks the pages a user opens, comparing what each shows
with what the SDK logged. Every API and file request the app makes to the server is recorded: none may fail (4xx/5xx)
and no error dialog may open. Signing out must revoke the session server side. Screenshots: test-artifacts/webapp/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from clearml_assets.local_server import LocalServer

from chromium import BROWSER_MARKS, chromium_page, screenshots
from conftest import run_sdk_script, sdk_env
from test_web_view import PROJECT, SDK_SCRIPT  # the same SDK-logged tasks the read-only view shows

BUILD_ENV = "CLEARML_WEB_BUILD"
DEFAULT_BUILD = Path(__file__).resolve().parents[1].parent / "shared" / "clearml-web" / "build"

pytestmark = BROWSER_MARKS
shot = screenshots("webapp")


def web_app_build() -> Path:
    """The build to serve: ``CLEARML_WEB_BUILD``, else ``../shared/clearml-web/build`` beside the repository."""
    return Path(os.environ.get(BUILD_ENV) or DEFAULT_BUILD)


@pytest.fixture(scope="module")
def build() -> Path:
    path = web_app_build()
    if not (path / "index.html").is_file():
        reason = (f"no ClearML web app build at {path} (set {BUILD_ENV}, or build clearml-web as "
                  "../shared/clearml-web/README.md says)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def served(build, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webapp")
    server = LocalServer(tmp / "server", api_port=0, files_port=0, web_port=0, web_app=build).start()
    try:
        info = server.info
        out = run_sdk_script(SDK_SCRIPT, sdk_env(info, tmp / "sdkhome"), timeout=300, cwd=tmp).stdout
        task, project, model = re.search(r"^TASK (\S+) (\S+) (\S+)", out, re.M).groups()
        yield SimpleNamespace(info=info, web=info.web_host, task=task, project=project, model=model,
                              dataset=re.search(r"^DATASET (\S+)", out, re.M).group(1))
    finally:
        server.stop()


class Calls:
    """Every response to a request the app sent to the local server (API through ``/api``, files)."""

    def __init__(self, served):
        self.served = served
        self.seen: list[dict[str, Any]] = []

    def __call__(self, response) -> None:
        url = response.url
        web, files = self.served.web, self.served.info.files_host
        if url.startswith(web + "/api/") or url.startswith(web + "/files/") or url.startswith(files):
            path = url.split("?", 1)[0].removeprefix(web)
            self.seen.append({"status": response.status, "path": path, "method": response.request.method})

    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.seen if c["status"] >= 400]

    def endpoints(self) -> set[str]:
        return {c["path"].rsplit("/", 1)[-1] for c in self.seen if c["path"].startswith("/api/")}


@pytest.fixture(scope="module")
def app(served):
    """A signed-in page of the web app and the record of its calls."""
    calls = Calls(served)
    with chromium_page(60_000, viewport={"width": 1500, "height": 1000}) as page:
        page.on("response", calls)
        sign_in(page, served)
        yield SimpleNamespace(page=page, calls=calls)
    assert not calls.failed(), f"the web app's calls that failed: {calls.failed()}"


def sign_in(page, served) -> None:
    page.goto(served.web + "/")
    page.fill("input[formcontrolname=name]", served.info.access_key)
    page.fill("input[formcontrolname=password]", served.info.secret_key)
    page.get_by_role("button", name="LOGIN").click()  # waits until the form is valid and the button enabled
    page.wait_for_url("**/dashboard")


def visit(app, path: str, *texts: str, name: str) -> str:
    """Open ``path``, wait until every text shows, check no call failed and no error dialog opened."""
    before = len(app.calls.seen)
    app.page.goto(app.calls.served.web + path)
    for text in texts:
        app.page.get_by_text(text, exact=False).first.wait_for()
    shot(app.page, name)
    failed = [c for c in app.calls.seen[before:] if c["status"] >= 400]
    assert not failed, f"{path}: the web app's calls that failed: {failed}"
    assert app.page.locator("mat-dialog-container").count() == 0, f"{path}: an error dialog opened"
    return re.sub(r"\s+", " ", app.page.inner_text("body"))


def _chart_titles(page) -> list[str]:
    return [e.text_content().strip() for e in page.query_selector_all("[data-id=graphTitleName]")]


def test_sign_in_sets_an_httponly_session_that_sign_out_revokes(served, build):
    with chromium_page(60_000, viewport={"width": 1500, "height": 1000}) as page:
        calls = Calls(served)
        page.on("response", calls)
        page.goto(served.web + "/")
        page.wait_for_selector("input[formcontrolname=password]")
        shot(page, "01_sign_in")
        sign_in(page, served)
        cookie = next(c for c in page.context.cookies() if c["name"] == "clearml_token_basic")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        token = cookie["value"]
        me = requests.post(f"{served.info.api_host}/users.get_current_user",
                           headers={"Authorization": f"Bearer {token}"}, json={}, timeout=30)
        assert me.status_code == 200
        # a reload keeps the session (login.supported_modes says authenticated)
        page.goto(served.web + "/projects")
        page.get_by_text(PROJECT).first.wait_for()
        assert not calls.failed(), calls.failed()
        signed_in = len(calls.seen)
        page.click("[data-id=Avatar]")
        page.get_by_text("Logout", exact=True).first.click()
        page.wait_for_selector("input[formcontrolname=password]")
        assert not [c for c in page.context.cookies() if c["name"] == "clearml_token_basic" and c["value"]]
        # a page's refresh still in flight when the session ends is refused, as by the real server
        assert {c["status"] for c in calls.seen[signed_in:] if c["status"] >= 400} <= {401}
    gone = requests.post(f"{served.info.api_host}/users.get_current_user",
                         headers={"Authorization": f"Bearer {token}"}, json={}, timeout=30)
    assert gone.status_code == 401


def test_projects_and_the_tasks_table(app, served):
    text = visit(app, "/projects", PROJECT, name="02_projects")
    assert PROJECT in text
    text = visit(app, f"/projects/{served.project}/tasks", "yolo run one", name="03_tasks_table")
    assert "Completed" in text and "Training" in text
    assert "Unknown User" not in text


def test_task_pages_show_what_the_sdk_logged(app, served):
    base = f"/projects/{served.project}/tasks/{served.task}"
    text = visit(app, f"{base}/execution", "SCRIPT PATH", name="04_task_execution")
    assert "python" in text.lower()
    text = visit(app, f"{base}/hyper-params/hyper-param/General", "0.0125", name="05_task_hyperparameters")
    assert "lr" in text and "epochs" in text
    text = visit(app, f"{base}/hyper-params/configuration/model%20config", "depth = 17",
                 name="06_task_configuration_object")
    visit(app, f"{base}/artifacts", "yolo web model", name="07_task_artifacts_output_model")
    app.page.get_by_text("summary", exact=True).first.click()
    app.page.get_by_text('"best": 0.5').first.wait_for()
    shot(app.page, "07_task_artifacts_summary")
    text = visit(app, f"{base}/general", served.task, name="08_task_info")
    assert "clearml-2.1.12" in text
    console = visit(app, f"{base}/log", "hello red world", name="09_task_console")
    assert "\x1b" not in console and "progress 100%" in console
    scalars = visit(app, f"{base}/scalars", "mAP50-95(B)", name="10_task_scalars")
    assert _chart_titles(app.page) == ["loss", "metrics"]
    assert [e.text_content() for e in app.page.query_selector_all("text.legendtext")] == ["train", "mAP50-95(B)"]
    assert "Iterations" in scalars
    visit(app, f"{base}/plots", "matrix", name="11_task_plots")
    assert _chart_titles(app.page) == ["matrix"] and app.page.locator(".js-plotly-plot").count() == 1
    app.page.goto(app.calls.served.web + f"{base}/debugImages")
    # the SDK's 64x48 image, loaded from the fileserver with the session cookie
    app.page.wait_for_function(
        "files => [...document.images].some(i => i.src.startsWith(files) && i.complete && i.naturalWidth === 64)",
        arg=app.calls.served.info.files_host)
    shot(app.page, "12_task_debug_samples")
    assert {"tasks.get_by_id_ex", "events.get_task_log", "events.scalar_metrics_iter_histogram",
            "events.get_task_plots", "events.debug_images"} <= app.calls.endpoints()


def test_models_and_a_model_page(app, served):
    text = visit(app, f"/projects/{served.project}/models", "yolo web model", name="13_models_table")
    assert "PyTorch" in text
    base = f"/projects/{served.project}/models/{served.model}"
    text = visit(app, f"{base}/general", "weights.bin", name="14_model_general")
    assert "PyTorch" in text and "yolo run one" in text
    visit(app, f"{base}/tasks", "yolo run one", name="15_model_lineage")
    assert {"models.get_all_ex", "models.get_by_id_ex"} <= app.calls.endpoints()


def test_datasets_page_lists_the_sdk_dataset(app, served):
    text = visit(app, "/datasets", "web data", name="16_datasets")
    assert "9B" in text  # the one file the SDK added ("some data")


def test_a_report_opens_with_its_text(app, served):
    # reports are written in the web app; the SDK has no reports API: this one is made through /api
    web = app.calls.served.web
    session = requests.Session()
    assert session.post(f"{web}/api/v999.0/auth.login", auth=(served.info.access_key, served.info.secret_key),
                        timeout=30).status_code == 200
    created = session.post(f"{web}/api/v999.0/reports.create", json={"name": "weekly report",
                                                                     "project": served.project},
                           timeout=30).json()["data"]
    assert session.post(f"{web}/api/v999.0/reports.update", json={"task": created["id"], "report":
                        "# Week one\n\nThe detector converged."}, timeout=30).status_code == 200
    visit(app, "/reports", "weekly report", name="17_reports")
    visit(app, f"/reports/{created['project_id']}/{created['id']}", "The detector converged.", name="18_report")
