"""Round trip as the proof: archive task T on account A, restore it into account B (another local server
with its own key pair), archive the copy on B: the two archives are equal in every count and every file's
bytes apart from ids, URLs and times (one test per kind of content). A second restore creates nothing,
and a restore that died half-way is finished by the next one, not doubled."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from seeding import DemoSpec, RawSeeder, client_of
from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import INCOMPLETE_TAG, RestoreError, TaskRestorer, provenance_tag

SPEC = DemoSpec(scalar_series=5, points_per_series=300, log_lines=400, artifacts=2, artifact_bytes=4096,
                plots=3, debug_images=3)
BIG_PLOT_CHARS = 150_000
_ID = re.compile(r"[0-9a-f]{32}")
_URL = re.compile(r"https?://[^\"'\n]+")
TIME_KEYS = frozenset({"timestamp", "@timestamp", "created", "last_update", "last_change", "started", "completed",
                       "published", "status_changed", "exported_at", "seconds", "updated", "last_changed_by",
                       "user", "company", "active_duration", "worker", "status_message", "account",
                       "plot_len"})  # plot_len: the length of a plot_str whose image URLs differ


def seed_rich_task(server: LocalServer, project: str = "rt/nested", publish: bool = False) -> str:
    """A task holding every kind of content: scalars, log levels, plots (one over 100,000 characters),
    debug images, artifacts, hyperparameters, configuration, tags, comment, an output model with weights,
    metadata and labels."""
    info = server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    project_id = seeder.project(project)
    task_id = seeder.seed_task(project_id, project, "round trip", SPEC, complete=False)
    now = 1_700_000_000_000
    seeder.add_events([{"type": "log", "task": task_id, "timestamp": now + 10 ** 7, "level": "error",
                        "msg": "an ERROR line"}])
    big = json.dumps({"data": [{"x": list(range(BIG_PLOT_CHARS // 7)), "type": "scatter"}]})
    assert len(big) > 100_000
    seeder.add_events([{"type": "plot", "task": task_id, "timestamp": now, "iter": 99, "metric": "big",
                        "variant": "plot", "plot_str": big}])
    image_url = seeder.upload(f"/{project}/round trip.{task_id}/metrics/figure/fig/figure_00000000.png",
                              b"\x89PNG\r\n\x1a\n" + os.urandom(700))
    seeder.add_events([{"type": "plot", "task": task_id, "timestamp": now, "iter": 0, "metric": "figure",
                        "variant": "fig", "plot_str": json.dumps({"data": [], "layout": {"images": [
                            {"source": image_url, "sizex": 1, "sizey": 1}]}})}])
    seeder.call("tasks.edit", task=task_id, force=True, comment="a comment\nwith two lines", tags=["t1", "t2"],
                hyperparams={"Args": {"lr": {"section": "Args", "name": "lr", "value": "0.01", "type": "float"},
                                      "epochs": {"section": "Args", "name": "epochs", "value": "3"}}},
                configuration={"OmegaConf": {"name": "OmegaConf", "value": "a: 1\nb: [2, 3]\n",
                                             "type": "yaml", "description": "cfg"}},
                script={"repository": "https://example.com/r.git", "entry_point": "train.py",
                        "requirements": {"pip": "numpy\n"}})
    weights = os.urandom(20_000)
    url = seeder.upload(f"/{project}/round trip.{task_id}/models/best.pt", weights)
    model_id = seeder.call("models.create", name="best", uri=url, task=task_id, project=project_id, ready=False,
                           framework="PyTorch", labels={"cat": 0, "dog": 1}, design={"design": "layers: 3"},
                           comment="model comment", tags=["m1"],
                           metadata=[{"key": "epochs", "type": "int", "value": "3"}])["id"]
    seeder.call("tasks.add_or_update_model", task=task_id, name="best", model=model_id, type="output")
    # the real server stores a model's events at iteration 0 (one value per metric/variant): ten variants
    seeder.add_events([{"type": "training_stats_scalar", "model_event": True, "model": model_id, "iter": i,
                        "timestamp": now + i, "metric": "model", "variant": f"acc{i}", "value": i / 10}
                       for i in range(10)])
    seeder.call("tasks.completed", task=task_id, force=True)
    if publish:
        seeder.call("tasks.publish", task=task_id, force=True)
    return task_id


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in TIME_KEYS or str(key).startswith("restore_"):
                continue
            out[_ID.sub("<id>", str(key))] = _norm(item)
        return out
    if isinstance(value, list):
        return [_norm(v) for v in value
                if not (isinstance(v, str) and (v.startswith("restored-from:") or v == INCOMPLETE_TAG))]
    if isinstance(value, str):
        return "<url>" if _URL.match(value) else _ID.sub("<id>", _URL.sub("<url>", value))
    return value


def _load(path: Path) -> Any:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


def compare_exports(a: Path, b: Path) -> dict[str, Any]:
    """Differences between two task export folders, ignoring ids, URLs and times (empty lists: equal)."""
    files_a = {_ID.sub("<id>", p.relative_to(a).as_posix()): p for p in a.rglob("*") if p.is_file()}
    files_b = {_ID.sub("<id>", p.relative_to(b).as_posix()): p for p in b.rglob("*") if p.is_file()}
    different = []
    for rel in sorted(set(files_a) & set(files_b)):
        pa, pb = files_a[rel], files_b[rel]
        if rel == "manifest.json":
            ma, mb = _load(pa), _load(pb)
            for key in ("counts", "server_counts"):
                ca = {k: v for k, v in ma[key].items() if k != "bytes"}
                cb = {k: v for k, v in mb[key].items() if k != "bytes"}
                if ca != cb:
                    different.append((rel, key, ca, cb))
        elif pa.suffix in (".json", ".jsonl"):
            if _norm(_load(pa)) != _norm(_load(pb)):
                different.append(rel)
        elif pa.read_bytes() != pb.read_bytes():
            different.append(rel)
    return {"only_a": sorted(set(files_a) - set(files_b)), "only_b": sorted(set(files_b) - set(files_a)),
            "different": different, "files": sorted(files_a)}


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    with LocalServer(root / "a", api_port=0, files_port=0) as server_a, \
            LocalServer(root / "b", api_port=0, files_port=0) as server_b:
        assert server_a.info.access_key != server_b.info.access_key
        a, b = client_of(server_a, "personal"), client_of(server_b, "original")
        task_id = seed_rich_task(server_a)
        exported = ClearMLTaskExporter(a, "personal", root / "exports").export_task(task_id)
        restorer = TaskRestorer(b)
        first = restorer.restore_path(exported.archive)
        tasks_after_first = b.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"]
        models_after_first = b.session.call("models.get_all", only_fields=["id"])["models"]
        second = restorer.restore_path(exported.archive)
        copy = ClearMLTaskExporter(b, "original", root / "exports").export_task(first[0].task_id)
        yield {"a": a, "b": b, "source": exported, "copy": copy, "first": first[0], "second": second[0],
               "tasks_after_first": tasks_after_first, "models_after_first": models_after_first,
               "diff": compare_exports(exported.folder, copy.folder)}


def _assert_equal(rt: dict, *prefixes: str) -> None:
    diff = rt["diff"]
    assert not diff["only_a"] and not diff["only_b"], diff
    concerned = [d for d in diff["different"]
                 if any((d if isinstance(d, str) else d[0]).startswith(p) for p in prefixes)]
    assert concerned == [], concerned
    assert any(f.startswith(prefixes) for f in diff["files"]), (prefixes, diff["files"])


def test_scalars_round_trip(round_trip):
    _assert_equal(round_trip, "scalars/", "metrics.json")
    counts = round_trip["copy"].counts
    assert counts["scalar_points"] == round_trip["source"].counts["scalar_points"] == 5 * 300


def test_logs_round_trip(round_trip):
    _assert_equal(round_trip, "console.log", "log.jsonl")
    assert round_trip["copy"].counts["log_lines"] == round_trip["source"].counts["log_lines"] == SPEC.log_lines + 1


def test_plots_round_trip_including_a_plot_over_100000_chars(round_trip):
    _assert_equal(round_trip, "plots/")
    plots = _load(round_trip["copy"].folder / "plots" / "plots.jsonl")
    assert len(plots) == SPEC.plots + 2 and max(len(p["plot_str"]) for p in plots) > 100_000


def test_images_referenced_by_plots_are_uploaded_and_relinked(round_trip):
    if not (round_trip["source"].folder / "plots" / "images.jsonl").exists():
        pytest.skip("this archive format does not keep the images plots reference")
    _assert_equal(round_trip, "plots/")
    (figure,) = [p for p in _load(round_trip["copy"].folder / "plots" / "plots.jsonl") if p["metric"] == "figure"]
    assert round_trip["b"].files_host + "/" in figure["plot_str"]
    assert round_trip["a"].files_host not in figure["plot_str"]
    assert round_trip["first"].counts["plot_image_files"] == 1


def test_debug_images_round_trip_point_at_the_target_fileserver(round_trip):
    _assert_equal(round_trip, "debug_images/")
    events = _load(round_trip["copy"].folder / "debug_images" / "index.jsonl")
    assert len(events) == SPEC.debug_images
    assert all(e["url"].startswith(round_trip["b"].files_host + "/") for e in events)
    assert round_trip["copy"].counts["debug_image_files"] == SPEC.debug_images


def test_artifacts_round_trip(round_trip):
    _assert_equal(round_trip, "artifacts/")
    assert round_trip["copy"].counts["artifact_files"] == SPEC.artifacts


def test_models_round_trip_with_weights_metadata_and_labels(round_trip):
    _assert_equal(round_trip, "models/")
    records = _load(round_trip["copy"].folder / "models" / "models.json")
    (record,) = records
    assert record["model"]["labels"] == {"cat": 0, "dog": 1} and record["model"]["metadata"]["epochs"]["value"] == "3"
    assert record["model"]["uri"].startswith(round_trip["b"].files_host + "/")
    assert record["model"]["task"] == round_trip["first"].task_id
    events = list((round_trip["source"].folder / "models").glob("*/events.jsonl"))
    if events:  # archive formats that keep model events: every one is back, on the copied model
        (copied,) = list((round_trip["copy"].folder / "models").glob("*/events.jsonl"))
        assert len(_load(copied)) == len(_load(events[0])) == 10


def test_task_fields_hyperparams_config_tags_status_round_trip(round_trip):
    _assert_equal(round_trip, "task.json", "manifest.json")
    task = _load(round_trip["copy"].folder / "task.json")["task"]
    assert task["status"] == "completed" and task["tags"] == ["t1", "t2"]
    assert task["hyperparams"]["Args"]["lr"]["value"] == "0.01"
    assert task["configuration"]["OmegaConf"]["value"] == "a: 1\nb: [2, 3]\n"
    assert provenance_tag(round_trip["source"].task_id) in task["system_tags"]
    assert INCOMPLETE_TAG not in task["system_tags"]
    assert task["runtime"]["restore_source_task"] == round_trip["source"].task_id
    assert task["runtime"]["restore_source_account"] == "personal"


def test_second_restore_creates_nothing(round_trip):
    first, second = round_trip["first"], round_trip["second"]
    assert first.created and not first.unchanged
    assert second.unchanged and not second.created and second.task_id == first.task_id
    b = round_trip["b"]
    tasks = b.session.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"]
    assert tasks == round_trip["tasks_after_first"]
    assert len(b.session.call("models.get_all", only_fields=["id"])["models"]) == len(round_trip["models_after_first"])
    assert len(round_trip["models_after_first"]) == 1


@pytest.mark.parametrize("step", ["uploads", "events", "models", "status"])
def test_restore_that_died_half_way_is_finished_not_doubled(tmp_path, step):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as server_a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as server_b:
        a, b = client_of(server_a, "personal"), client_of(server_b, "original")
        task_id = seed_rich_task(server_a, "died", publish=True)
        exported = ClearMLTaskExporter(a, "personal", tmp_path / "x").export_task(task_id)

        def die(reached: str) -> None:
            if reached == step:
                raise RestoreError(f"simulated crash after step {step}")

        with pytest.raises(RestoreError):
            TaskRestorer(b, fail_after=die).restore_path(exported.archive)
        (partial,) = b.tasks.find_by_system_tag(provenance_tag(task_id))
        assert INCOMPLETE_TAG in partial["system_tags"]
        assert partial["status"] in ("stopped", "published")  # never left in progress
        result = TaskRestorer(b).restore_path(exported.archive)[0]
        assert result.resumed and result.task_id == partial["id"]
        assert len(b.tasks.find_by_system_tag(provenance_tag(task_id))) == 1
        copy = ClearMLTaskExporter(b, "original", tmp_path / "x").export_task(result.task_id)
        diff = compare_exports(exported.folder, copy.folder)
        assert diff["different"] == [] and not diff["only_a"] and not diff["only_b"], diff
        assert copy.manifest["fingerprint"]["status"] == "published"
        assert len(b.session.call("models.get_all", only_fields=["id"])["models"]) == 1


def test_an_interrupted_restore_leaves_no_task_in_progress(tmp_path):
    with LocalServer(tmp_path / "a", api_port=0, files_port=0) as server_a, \
            LocalServer(tmp_path / "b", api_port=0, files_port=0) as server_b:
        a, b = client_of(server_a, "personal"), client_of(server_b, "original")
        task_id = seed_rich_task(server_a, "interrupted")
        exported = ClearMLTaskExporter(a, "personal", tmp_path / "x").export_task(task_id)

        def interrupt(step: str) -> None:
            if step == "uploads":
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            TaskRestorer(b, fail_after=interrupt).restore_path(exported.archive)
        (partial,) = b.tasks.find_by_system_tag(provenance_tag(task_id))
        assert partial["status"] == "stopped" and INCOMPLETE_TAG in partial["system_tags"]
        (done,) = TaskRestorer(b).restore_path(exported.archive)
        assert done.resumed and done.task_id == partial["id"]
        assert b.tasks.get(done.task_id).raw["status"] == "completed"
