"""The local server's read-only web view, driven in a real headless Chromium: every link the ClearML SDK and this
project print opens a page behind the server's key pair, a task's tabs show what the SDK reported (console,
scalar charts, Plotly plots, debug images, artifacts and models with downloads), a project page lists its tasks
and compares two of them. The data comes from the real SDK (subprocess) against a LocalServer on free ports.
Screenshots land in test-artifacts/web/."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import requests

from clearml_assets.local_server import LocalServer

from chromium import BROWSER_MARKS, chromium_page, screenshots
from conftest import run_sdk_script, sdk_env

PROJECT = "web view"

SDK_SCRIPT = r"""
import numpy as np
from clearml import Dataset, OutputModel, Task

task = Task.init(project_name="web view", task_name="yolo run one", auto_connect_frameworks=False, output_uri=True,
                 auto_resource_monitoring=False, auto_connect_streams=False)
task.connect({"lr": 0.0125, "epochs": 3}, name="General")
task.connect_configuration({"model": {"depth": 17}}, name="model config")
log = task.get_logger()
for i in range(6):
    log.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
    log.report_scalar("metrics", "mAP50-95(B)", value=0.1 * i, iteration=i)
log.report_plotly(title="confusion", series="matrix", iteration=0,
                  figure={"data": [{"type": "heatmap", "z": [[5, 1], [2, 7]]}], "layout": {}})
image = np.zeros((48, 64, 3), dtype=np.uint8)
image[:, :32] = (255, 0, 0)
log.report_image("samples", "batch", iteration=0, image=image)
log.report_text("hello \x1b[31mred\x1b[0m world")
log.report_text("progress 10%\rprogress 100%")
task.upload_artifact("summary", artifact_object={"best": 0.5})
open("weights.bin", "wb").write(b"WEIGHTS" * 1000)
model = OutputModel(task=task, name="yolo web model", framework="PyTorch")
model.update_weights(weights_filename="weights.bin")
print("LOGPAGE", task.get_output_log_web_page())
print("TASK", task.id, task.project, model.id)
task.close()

other = Task.init(project_name="web view", task_name="yolo run two", auto_connect_frameworks=False,
                  auto_resource_monitoring=False, auto_connect_streams=False)
for i in range(6):
    other.get_logger().report_scalar("loss", "train", value=2.0 / (i + 1), iteration=i)
print("OTHER", other.id)
other.close()

open("data.txt", "w").write("some data")
ds = Dataset.create(dataset_name="web data", dataset_project="web view")
ds.add_files("data.txt")
ds.upload()
ds.finalize()
print("DATASET", ds.id, ds._task.project)
"""

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    server = LocalServer(tmp / "server", api_port=0, files_port=0, web_port=0).start()
    try:
        info = server.info
        out = run_sdk_script(SDK_SCRIPT, sdk_env(info, tmp / "sdkhome"), timeout=300, cwd=tmp).stdout
        log_page = re.search(r"^LOGPAGE (\S+)", out, re.M).group(1)
        task_id, project_id, model_id = re.search(r"^TASK (\S+) (\S+) (\S+)", out, re.M).groups()
        yield SimpleNamespace(
            info=info, tmp=tmp, web=info.web_host, log_page=log_page, task=task_id, project=project_id,
            model=model_id, other=re.search(r"^OTHER (\S+)", out, re.M).group(1),
            dataset=re.search(r"^DATASET (\S+) (\S+)", out, re.M).groups())
    finally:
        server.stop()


@pytest.fixture
def page(web):
    with chromium_page(60_000, viewport={"width": 1500, "height": 1000}, accept_downloads=True) as page:
        yield page


shot = screenshots("web")


def sign_in(page, web) -> None:
    page.fill("input[name=access_key]", web.info.access_key)
    page.fill("input[name=secret_key]", web.info.secret_key)
    page.click("button[type=submit]")


def text(page) -> str:
    return re.sub(r"\s+", " ", page.inner_text("main"))


def test_pages_need_the_key_pair_and_stay_on_this_site(web):
    task_page = f"{web.web}/projects/{web.project}/experiments/{web.task}/output/log"
    resp = requests.get(task_page, allow_redirects=False, timeout=30)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=%2Fprojects%2F")
    resp = requests.post(f"{web.web}/login", data={"access_key": web.info.access_key, "secret_key": "wrong",
                                                     "next": "/projects"}, allow_redirects=False, timeout=30)
    assert resp.status_code == 401 and "Unknown access key or wrong secret key" in resp.text
    assert "clearml_token_basic" not in resp.headers.get("set-cookie", "")
    resp = requests.post(f"{web.web}/login", data={"access_key": web.info.access_key,
                                                     "secret_key": web.info.secret_key, "next": "//evil.example"},
                         allow_redirects=False, timeout=30)
    assert resp.status_code == 303 and resp.headers["location"] == "/projects"
    assert "HttpOnly" in resp.headers["set-cookie"] and "SameSite=lax" in resp.headers["set-cookie"]
    session = resp.cookies["clearml_assets_view"]
    # read only: no page takes a write
    assert requests.post(task_page, cookies={"clearml_assets_view": session}, timeout=30).status_code == 405
    # the fileserver takes the session cookie for downloads only, never for uploads
    files = requests.post(f"{web.info.files_host}/", files={"/x/evil.txt": ("evil.txt", b"x")},
                          cookies={"clearml_assets_view": session}, timeout=30)
    assert files.status_code == 401
    assert requests.get(f"{web.web}/projects", cookies={"clearml_assets_view": "forged"},
                        allow_redirects=False, timeout=30).status_code == 303
    assert requests.get(f"{web.web}/static/plotly.min.js", timeout=30).text.startswith("/**")


def test_sdk_links_open_every_task_tab_with_what_the_sdk_reported(web, page):
    # the link the SDK itself returns (Task.get_output_log_web_page), via the sign-in page
    assert web.log_page.startswith(web.web + "/projects/")
    page.goto(web.log_page)
    page.wait_for_selector("form.login")
    shot(page, "01_sign_in")
    sign_in(page, web)
    page.wait_for_selector("#console")
    assert page.url == web.log_page
    console = page.inner_text("#console")
    assert "hello red world" in console and "\x1b" not in console
    assert "progress 100%" in console and "progress 10%" not in console
    shot(page, "02_console")

    base = f"{web.web}/projects/{web.project}/experiments/{web.task}"
    page.goto(f"{base}/output/execution")
    body = text(page)
    assert "yolo run one" in body and "completed" in body
    assert re.search(r"lr 0\.0125", body) and "depth" in body and "17" in body
    shot(page, "03_configuration")

    page.goto(f"{base}/output/metrics/scalar")
    page.wait_for_function("document.querySelectorAll('.chart .main-svg').length >= 2")
    titles = page.eval_on_selector_all(".chart", "els => els.map(e => e.dataset.title)")
    assert titles == ["loss", "metrics"]
    assert page.locator(".chart .scatterlayer .trace").count() == 2
    shot(page, "04_scalars")

    page.goto(f"{base}/output/metrics/plots")
    page.wait_for_function("document.querySelectorAll('.chart .main-svg').length >= 1")
    assert page.eval_on_selector_all(".chart", "els => els.map(e => e.dataset.title)") == ["confusion / matrix"]
    assert page.locator(".chart .heatmaplayer, .chart image").count() >= 1
    shot(page, "05_plots")

    page.goto(f"{base}/output/debugImages")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    widths = page.eval_on_selector_all(".images img", "els => els.map(e => e.naturalWidth)")
    assert widths == [64]  # decoded: the fileserver served it to the browser session
    shot(page, "06_debug_images")

    page.goto(f"{base}/artifacts")
    assert "summary" in page.inner_text("#artifacts") and "yolo web model" in page.inner_text("#models")
    with page.expect_download() as download:
        page.click("#models a[download]")
    assert Path(download.value.path()).read_bytes() == b"WEIGHTS" * 1000
    shot(page, "07_artifacts_models")

    page.click("#models a:not([download])")
    page.wait_for_selector("#model")
    assert page.url.endswith(f"/models/{web.model}") and "PyTorch" in text(page)
    uri = page.get_attribute("#model-download", "href")
    assert requests.get(uri, timeout=30).status_code == 401  # no session: refused as before
    assert page.request.get(uri).body() == b"WEIGHTS" * 1000  # the browser session downloads it
    shot(page, "08_model")


def test_project_page_lists_tasks_with_metrics_and_compares_two(web, page):
    page.goto(f"{web.web}/projects/{web.project}")
    sign_in(page, web)
    page.wait_for_selector("#tasks")
    header = page.inner_text("#tasks tr:first-child")
    assert "metrics/mAP50-95(B)" in header and "loss/train" in header
    row = page.inner_text(f"#tasks tr[data-task='{web.task}']")
    assert "yolo run one" in row and "0.5" in row and "0.1667" in row
    shot(page, "09_project")
    page.check(f"input[value='{web.task}']")
    page.check(f"input[value='{web.other}']")
    page.click("text=Compare selected tasks")
    page.wait_for_function("document.querySelectorAll('.chart .main-svg').length >= 2")
    legend = page.inner_text(".chart[data-title='loss']")
    assert "yolo run one · train" in legend and "yolo run two · train" in legend
    shot(page, "10_compare")


def test_dataset_and_archive_metadata_links_open(web, page, tmp_path, monkeypatch):
    from clearml_assets.archives.assets import task_archive_key
    from clearml_assets.archives.defs import build_archive_defs
    from clearml_assets.translator import account_slug
    from clearml_assets.resource import ClearMLResource

    dataset_id, dataset_project = web.dataset
    # the dataset page link as the SDK logs it (Dataset._log_dataset_page)
    page.goto(f"{web.web}/datasets/simple/{dataset_project}/experiments/{dataset_id}")
    sign_in(page, web)
    page.wait_for_selector("#dataset")
    assert "web data" in text(page) and "ds_file_count" in text(page)
    shot(page, "11_dataset")

    monkeypatch.setenv("CLEARML_ASSETS_HOME", str(tmp_path / "home"))
    clearml = ClearMLResource.for_local_server(web.info, home=str(tmp_path / "res"))
    account = clearml.default_account
    key = task_archive_key(account)
    defs = build_archive_defs([account], resources={"clearml": clearml})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(f"clearml_tasks_{account_slug(account)}", [web.task])
        result = dg.materialize([defs.get_assets_def(key)], partition_key=web.task, instance=instance,
                                resources={"clearml": clearml}, selection=[key])
        assert result.success
        link = result.asset_materializations_for_node(defs.get_assets_def(key).node_def.name)[0] \
            .metadata["task_link"].value
    assert link.startswith(web.web + f"/projects/{web.project}/experiments/{web.task}")
    page.goto(link)
    assert "yolo run one" in text(page) and "lr" in text(page)
    shot(page, "12_link_from_materialization")


def test_hostile_task_contents_are_shown_as_text_never_run(web):
    from seeding import RawSeeder

    seeder = RawSeeder(web.info.api_host, web.info.files_host, web.info.access_key, web.info.secret_key)
    evil = '<script>alert("name")</script>'
    task_id = seeder.call("tasks.create", name=evil, type="training", project=web.project)["id"]
    seeder.call("tasks.add_or_update_artifacts", task=task_id, force=True, artifacts=[
        {"key": "x", "type": "custom", "mode": "output", "uri": "javascript:alert(1)"}])
    seeder.add_events([{"type": "plot", "task": task_id, "timestamp": 1, "iter": 0, "metric": "m", "variant": "v",
                        "plot_str": '{"data": [], "layout": {"title": "</script><script>alert(2)</script>"}}'}])
    cookies = requests.post(f"{web.web}/login", data={"access_key": web.info.access_key,
                                                       "secret_key": web.info.secret_key},
                            allow_redirects=False, timeout=30).cookies
    base = f"{web.web}/projects/{web.project}/experiments/{task_id}"
    pages = [requests.get(f"{base}/{tab}", cookies=cookies, timeout=30).text
             for tab in ("artifacts", "output/metrics/plots", "output/execution")]
    pages.append(requests.get(f"{web.web}/projects/{web.project}/experiments", cookies=cookies, timeout=30).text)
    for html in pages:
        assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in pages[2]
    assert 'href="javascript:' not in pages[0] and "<code>javascript:alert(1)</code>" in pages[0]


def test_long_values_wrap_previews_keep_lines_and_plots_are_titled(web, page):
    """A long configuration value (the Pipes context, one 5,000-character token) wraps instead of widening the
    page; an artifact preview keeps its line breaks; every plot is titled with its metric and variant."""
    from server_api import RawApi

    api = RawApi(web.info)
    task = api.call("tasks.create", name="long values", type="training", project=web.project)["id"]
    context = "eyJ" + "QmFzZTY0IGNvbnRleHQ" * 260  # one unbreakable token, as a Pipes context is
    api.call("tasks.edit_configuration", task=task, configuration=[{"name": "Pipes", "value": context}])
    api.call("tasks.edit_hyper_params", task=task, hyperparams=[{"section": "Args", "name": "context",
                                                                 "value": context}])
    api.call("tasks.add_or_update_artifacts", task=task, artifacts=[
        {"key": "table", "type": "pandas", "mode": "output", "uri": f"{web.info.files_host}/t.csv",
         "type_data": {"preview": "a,b\n1,2\n3,4"}}])
    base = f"{web.web}/projects/{web.project}/experiments/{task}"
    page.goto(f"{base}/output/execution")
    sign_in(page, web)
    page.wait_for_selector("pre.log")
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    shot(page, "10_long_configuration")
    page.goto(f"{base}/artifacts")
    assert page.inner_text("#artifacts td.preview") == "a,b\n1,2\n3,4"
    page.goto(f"{web.web}/projects/{web.project}/experiments/{web.task}/output/metrics/plots")
    page.wait_for_function("document.querySelectorAll('.chart .main-svg').length >= 1")
    assert page.eval_on_selector_all("h3.figure-title", "els => els.map(e => e.innerText)") == ["confusion / matrix"]
    # the SDK's own title (the series, a plain string in its layout) is drawn by plotly.js too
    assert page.eval_on_selector(".chart .gtitle", "e => e.textContent") == "matrix"
