"""Pure (no ClearML) parts of the datasets capability: demo data, validation, curation, queries, layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from clearml_assets.datasets.curation import split_for, write_curated_folder
from clearml_assets.datasets.frame_query import FrameQueryError, frame_query_mask, select_frames
from clearml_assets.datasets.layout import write_training_view
from clearml_assets.datasets.manifest import folder_content_hash, read_manifest
from clearml_assets.datasets.shapes import DEMO_CLASSES, generate_demo_dataset, render_demo_image
from clearml_assets.datasets.validation import parse_label, scan_source
from clearml_assets.errors import DatasetValidationError


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    generate_demo_dataset(folder, images=24, seed=3, size=96)
    return folder


def _copy(demo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(demo, dst)
    return dst


def test_demo_is_deterministic_and_boxes_match_pixels(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_demo_dataset(a, images=6, seed=7, size=96)
    generate_demo_dataset(b, images=6, seed=7, size=96)
    assert folder_content_hash(a)[0] == folder_content_hash(b)[0]
    generate_demo_dataset(tmp_path / "c", images=6, seed=8, size=96)
    assert folder_content_hash(tmp_path / "c")[0] != folder_content_hash(a)[0]
    # Growing the set leaves earlier files byte-identical.
    generate_demo_dataset(tmp_path / "d", images=3, seed=7, size=96)
    assert (tmp_path / "d/images/shape_00002.png").read_bytes() == (a / "images/shape_00002.png").read_bytes()
    # Box edges are exact: the shape's colour fills the box centre and the box touches the shape.
    image, boxes = render_demo_image(0, seed=7, size=96)
    assert boxes and all(c in range(len(DEMO_CLASSES)) for c, *_ in boxes)
    px = image.load()
    for cls, cx, cy, w, h in boxes:
        assert w * 96 >= 96 // 9 * 2  # big enough to learn
        r, g, bl = px[int(cx * 96), int(cy * 96 + (h * 96 / 4 if cls == 2 else 0))]
        assert max(r, g, bl) > 150  # saturated class colour, not the grey noise (60..140)


def test_scan_accepts_clean_demo(demo):
    scan = scan_source(demo)
    assert scan.class_names == DEMO_CLASSES
    assert len(scan.frames) == 24 and scan.issues == []
    assert all(f.width == 96 and f.height == 96 and len(f.sha256) == 64 for f in scan.frames)


@pytest.mark.parametrize("text,fragment", [
    ("0 0.5 0.5 0.2 0.2 0.9\n", "6 fields"),
    ("3 0.5 0.5 0.2 0.2\n", "class id 3 outside 0..2"),
    ("0 nan 0.5 0.2 0.2\n", "non-finite"),
    ("0 1.5 0.5 0.2 0.2\n", "out of range"),
    ("0 0.95 0.5 0.2 0.2\n", "outside the image"),
    ("0 0.5 0.5 0 0.2\n", "empty box"),
    ("x 0.5 0.5 0.2 0.2\n", "not numbers"),
    ("1.5 0.5 0.5 0.2 0.2\n", "not an integer"),
])
def test_parse_label_rejects(text, fragment):
    boxes, problems = parse_label("1 0.5 0.5 0.1 0.1\n" + text, 3)
    assert len(problems) == 1 and fragment in problems[0] and "line 2" in problems[0]


def test_scan_reports_each_bad_file(demo, tmp_path):
    src = _copy(demo, tmp_path)
    (src / "images/shape_00000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # corrupt
    (src / "labels/shape_00001.txt").write_text("0 0.5 0.5 0.2 0.2 0.1\n")  # 6 fields
    (src / "labels/shape_00002.txt").write_text("7 0.5 0.5 0.2 0.2\n")  # class id >= nc
    (src / "labels/shape_00003.txt").write_text("1 nan 0.5 0.2 0.2\n")  # NaN
    (src / "labels/shape_00004.txt").write_text("1 0.99 0.5 0.2 0.2\n")  # box outside image
    (src / "labels/orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # label without image
    (src / "labels/shape_00005.txt").unlink()  # image without label
    shutil.copy(src / "images/shape_00006.png", src / "images/zz_dup.png")  # duplicate bytes
    shutil.copy(src / "labels/shape_00006.txt", src / "labels/zz_dup.txt")
    scan = scan_source(src)
    found = {(i.path, i.problem) for i in scan.issues}
    assert found == {
        ("images/shape_00000.png", "corrupt_image"), ("labels/shape_00001.txt", "bad_label"),
        ("labels/shape_00002.txt", "bad_label"), ("labels/shape_00003.txt", "bad_label"),
        ("labels/shape_00004.txt", "bad_label"), ("labels/orphan.txt", "orphan_label"),
        ("images/shape_00005.png", "orphan_image"), ("images/zz_dup.png", "duplicate_image"),
    }
    assert len(scan.frames) == 24 - 6  # shape_00000..05 out; the duplicate was an extra file
    with pytest.raises(DatasetValidationError) as err:
        write_curated_folder(scan, tmp_path / "cur", val_fraction=0.2, seed=0, source="x", on_invalid="fail")
    assert "shape_00001.txt" in str(err.value) and "8 file(s)" in str(err.value)


@pytest.mark.parametrize("case", ["missing", "empty", "not_a_dir", "unreadable", "no_classes"])
def test_scan_rejects_unusable_folder(tmp_path, case):
    folder = tmp_path / "src"
    if case == "empty":
        folder.mkdir()
        (folder / "classes.txt").write_text("a\n")
    elif case == "not_a_dir":
        folder.write_text("x")
    elif case in ("unreadable", "no_classes"):
        generate_demo_dataset(folder, images=1, size=64)
        if case == "unreadable":
            folder.chmod(0)
            if os.geteuid() == 0:  # root reads everything: drop the capabilities that let it
                return _assert_unreadable_without_dac_override(folder)
        else:
            (folder / "classes.txt").unlink()
    try:
        with pytest.raises(DatasetValidationError) as err:
            scan_source(folder)
        assert str(folder) in str(err.value)
    finally:
        if folder.exists():
            folder.chmod(0o755)


def test_split_is_by_content_and_stable():
    hashes = [f"{i:064x}" for i in range(2000)]
    splits = [split_for(h, 0.2, 0) for h in hashes]
    assert 0.15 < splits.count("val") / 2000 < 0.25
    assert splits == [split_for(h, 0.2, 0) for h in hashes]
    assert splits != [split_for(h, 0.2, 1) for h in hashes]


def test_curated_folder_keeps_paths_and_adding_files_does_not_reshuffle(demo, tmp_path):
    cur = write_curated_folder(scan_source(demo), tmp_path / "c1", val_fraction=0.25, seed=0, source="raw1")
    assert (tmp_path / "c1/images/shape_00000.png").read_bytes() == (demo / "images/shape_00000.png").read_bytes()
    manifest = read_manifest(tmp_path / "c1")
    assert len(manifest) == 24 and set(manifest["split"]) == {"train", "val"}
    assert {"frame_id", "split", "source", "width", "height", "bytes", "sha256", "n_circle", "n_square",
            "n_triangle", "n_objects"} <= set(manifest.columns)
    assert (manifest["n_circle"] + manifest["n_square"] + manifest["n_triangle"] == manifest["n_objects"]).all()
    assert pd.read_csv(tmp_path / "c1/manifest.csv")["sha256"].tolist() == manifest["sha256"].tolist()
    bigger = tmp_path / "bigger"
    shutil.copytree(demo, bigger)
    generate_demo_dataset(bigger, images=10, seed=3, size=96, start=24)
    cur2 = write_curated_folder(scan_source(bigger), tmp_path / "c2", val_fraction=0.25, seed=0, source="raw2")
    merged = cur.manifest.merge(cur2.manifest, on="frame_id", suffixes=("_1", "_2"))
    assert len(merged) == 24 and (merged["split_1"] == merged["split_2"]).all()


def test_frame_query_matches_pandas_semantics(demo, tmp_path):
    manifest = write_curated_folder(scan_source(demo), tmp_path / "c", val_fraction=0.25, seed=0,
                                    source="r").manifest
    for query in ['split == "train"', 'split == "val" and n_triangle > 0', 'not (split == "val") or n_objects >= 2',
                  'split in ["train", "val"] & ~(n_circle == 0)', '0 < n_objects <= 2', 'classes != ""',
                  "split not in ('val',)", "width == 96 and n_square == 1"]:
        assert select_frames(manifest, query)["frame_id"].tolist() == manifest.query(query)["frame_id"].tolist(), query
    assert frame_query_mask(manifest, 'split == "train"').sum() + frame_query_mask(manifest, 'split == "val"').sum() == 24


@pytest.mark.parametrize("query", [
    "__import__('os').system('echo pwned')", "split.str.len() > 3", "@os", "split == 'train'; x = 1",
    "n_objects + 1 > 2", "lambda: 1", "nope == 1", "[c for c in split]", "split == `train`", "",
    "split == open('/etc/passwd').read()", "(1).__class__", "split[0] == 't'",
])
def test_frame_query_rejects_unsafe_or_unknown(demo, tmp_path, query):
    manifest = pd.DataFrame({"split": ["train", "val"], "n_objects": [1, 2]})
    with pytest.raises(FrameQueryError):
        frame_query_mask(manifest, query)


def test_training_view_layout(demo, tmp_path):
    cur = write_curated_folder(scan_source(demo), tmp_path / "c", val_fraction=0.25, seed=0, source="r")
    manifest = cur.manifest
    train = frame_query_mask(manifest, 'split == "train" and n_triangle == 0')
    val = frame_query_mask(manifest, 'split == "val"')
    view = write_training_view(tmp_path / "c", manifest, train, val, DEMO_CLASSES, tmp_path / "v",
                               view_info={"train_query": "q"})
    out = tmp_path / "v"
    listed = {split: (out / f"{split}.txt").read_text().split() for split in ("train", "val")}
    assert len(listed["train"]) == int(train.sum()) and len(listed["val"]) == int(val.sum())
    for line in listed["train"] + listed["val"]:
        assert (out / line).is_file() and line.startswith("./images/")
    # the view keeps the curated paths, so ClearML can match its files to the parent's
    assert set(view.manifest["image"]) <= set(manifest["image"])
    assert not (out / "images" / manifest[~(train | val)]["image"].iloc[0].split("/")[-1]).exists()
    assert (view.manifest.query('split == "train"')["n_triangle"] == 0).all()
    text = (out / "data.yaml").read_text()
    assert "train: train.txt" in text and "val: val.txt" in text and '2: "triangle"' in text
    with pytest.raises(DatasetValidationError, match="both train_query and val_query"):
        write_training_view(tmp_path / "c", manifest, train | val, val, DEMO_CLASSES, tmp_path / "v2",
                            view_info={})


def test_data_yaml_is_loadable_by_ultralytics(demo, tmp_path, monkeypatch):
    from ultralytics.data.utils import check_det_dataset

    cur = write_curated_folder(scan_source(demo), tmp_path / "c", val_fraction=0.25, seed=0, source="r")
    m = cur.manifest
    write_training_view(tmp_path / "c", m, m["split"] == "train", m["split"] == "val", DEMO_CLASSES,
                        tmp_path / "v", view_info={})
    monkeypatch.chdir(tmp_path)  # not the view folder: paths must resolve from data.yaml's folder
    data = check_det_dataset(str(tmp_path / "v/data.yaml"), autodownload=False)
    assert Path(data["train"]) == (tmp_path / "v/train.txt").resolve()
    assert data["names"] == dict(enumerate(DEMO_CLASSES))
    from ultralytics.data.utils import img2label_paths

    images = [str(Path(data["train"]).parent / line[2:]) for line in Path(data["train"]).read_text().split()]
    assert images and all(Path(label).is_file() for label in img2label_paths(images))


def test_cli_make_demo_data(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "clearml_assets.cli", "make-demo-data", "--out", str(out),
                           "--images", "4", "--seed", "5", "--size", "64"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 4 images" in proc.stdout
    scan = scan_source(out)
    assert len(scan.frames) == 4 and not scan.issues
    generate_demo_dataset(tmp_path / "again", images=4, seed=5, size=64)
    assert folder_content_hash(out)[0] == folder_content_hash(tmp_path / "again")[0]


def test_semver_and_content_tag():
    from clearml_assets.datasets.versions import ClearMLDatasetVersion, content_tag, next_semver

    def v(version, tags=()):
        return ClearMLDatasetVersion(id=version, name="n", project_id="p", version=version, status="completed",
                                     tags=tuple(tags))

    assert next_semver([]) == "1.0.0"
    assert next_semver([v("1.0.0"), v("1.2.0"), v("1.10.0"), v("junk")]) == "1.11.0"
    assert next_semver([v("2.0.0"), v("1.4.0")]) == "2.1.0"
    tagged = v("1.0.0", ["x", content_tag("ab" * 32)])
    assert tagged.content_hash == "ab" * 32 and tagged.data_version == "ab" * 32
    assert v("1.0.0").content_hash is None and v("1.0.0").data_version == "id:1.0.0"


def test_training_view_checks_evaluate_files(demo, tmp_path):
    from clearml_assets.datasets.checks import evaluate_training_view

    cur = write_curated_folder(scan_source(demo), tmp_path / "c", val_fraction=0.25, seed=0, source="r")
    m = cur.manifest
    write_training_view(tmp_path / "c", m, m["split"] == "train", m["split"] == "val", DEMO_CLASSES,
                        tmp_path / "v", view_info={})
    good = evaluate_training_view(tmp_path / "v")
    assert {k: p for k, (p, _) in good.items()} == {"labels_valid": True, "splits_not_empty": True,
                                                     "class_balance": True}
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "v", bad)
    first_train = (bad / "train.txt").read_text().split()[0]
    label = bad / first_train.replace("./images/", "labels/").rsplit(".", 1)[0]
    label = label.with_suffix(".txt")
    label.write_text("9 0.5 0.5 0.1 0.1\n")
    for line in (bad / "val.txt").read_text().split():
        (bad / line).unlink()
    result = evaluate_training_view(bad, min_class_fraction=0.5)
    assert result["labels_valid"][0] is False and label.name in result["labels_valid"][1]["files_at_fault"].value
    assert result["splits_not_empty"][0] is False and result["splits_not_empty"][1]["empty_splits"] == "val"
    assert result["class_balance"][0] is False  # no class holds half of the objects


def test_names_too_short_for_clearml_fail_before_any_work():
    import dagster as dg

    from clearml_assets.datasets import build_dataset_defs
    from clearml_assets.errors import ClearMLConfigError

    with pytest.raises(ClearMLConfigError, match="dataset_name 'ab' is too short"):
        build_dataset_defs(raw_name="ab")
    with pytest.raises(ClearMLConfigError, match="dataset_project 'p' is too short"):
        build_dataset_defs(dataset_project="p")
    defs = build_dataset_defs()
    run_config = {"ops": {"datasets__shapes_raw": {"config": {"dataset_name": " x "}}}}
    with pytest.raises(ClearMLConfigError, match="dataset_name ' x ' is too short"):
        # The check runs before the resource is used, so no server is needed.
        dg.materialize([*defs.assets], selection=[dg.AssetKey(["datasets", "shapes_raw"])], run_config=run_config,
                       resources={"clearml": dg.ResourceDefinition.none_resource()})


def _assert_unreadable_without_dac_override(folder):
    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux's setpriv is needed to test an unreadable folder as root"
    caps = "-dac_override,-dac_read_search"
    script = ("import sys\nfrom clearml_assets.datasets.validation import scan_source\n"
              "from clearml_assets.errors import DatasetValidationError\n"
              "try:\n    scan_source(sys.argv[1])\nexcept DatasetValidationError as exc:\n    print(exc)\n"
              "else:\n    sys.exit('no error')\n")
    try:
        out = subprocess.run([setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", sys.executable, "-c", script,
                              str(folder)], capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(folder) in out.stdout and "not readable" in out.stdout


def test_a_dataset_id_made_on_another_account_is_refused():
    import dagster as dg

    from clearml_assets.datasets.checks import dataset_id_for_account
    from clearml_assets.errors import ClearMLConfigError

    key = dg.AssetKey(["datasets", "shapes_training_view"])
    instance = dg.DagsterInstance.ephemeral()
    assert dataset_id_for_account(instance, key, "local") is None
    instance.report_runless_asset_event(dg.AssetMaterialization(
        key, metadata={"dataset_id": "a" * 32, "clearml_account": "original"}))
    assert dataset_id_for_account(instance, key, "original") == "a" * 32
    with pytest.raises(ClearMLConfigError) as err:
        dataset_id_for_account(instance, key, "personal")
    assert "'original'" in str(err.value) and "'personal'" in str(err.value) and "a" * 32 in str(err.value)
    # an id given in run config is the user's explicit choice
    assert dataset_id_for_account(instance, key, "personal", "b" * 32) == "b" * 32


def test_dataset_sdk_child_records_are_typed_and_load_no_dagster():
    import pickle

    from clearml_assets.types import DatasetVersionSpec, DatasetVersionUpload

    spec = DatasetVersionSpec.of({"name": "n", "project": "p", "version": "1.0.0", "folder": "/f",
                                  "parents": ["a"], "tags": ["dagster"]})
    assert spec == DatasetVersionSpec("n", "p", "1.0.0", "/f", ("a",), ("dagster",))
    assert DatasetVersionSpec.of(spec) is spec
    upload = DatasetVersionUpload("id", "1.0.0", 1, 2, 0, 3, 4)
    assert pickle.loads(pickle.dumps((spec, upload))) == (spec, upload)  # crosses the process boundary as is
    code = ("import sys, clearml_assets.datasets.sdk_ops, clearml_assets.types; "
            "assert 'dagster' not in sys.modules, 'dagster loaded in the SDK child'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_a_translator_maps_clearml_datasets_to_the_users_keys_and_groups():
    import dagster as dg

    from clearml_assets.datasets import build_dataset_defs
    from clearml_assets.resource import ClearMLResource
    from clearml_assets.translator import DagsterClearMLTranslator

    class TeamTranslator(DagsterClearMLTranslator):
        def get_dataset_asset_key(self, dataset):
            return dg.AssetKey(["vision", dataset.project.replace("/", "_"), dataset.stage])

        def get_dataset_group_name(self, dataset):
            return f"vision_{dataset.stage}"

    defs = build_dataset_defs(dataset_project="Team/Detect", translator=TeamTranslator(), clearml=ClearMLResource())
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {f"vision/Team_Detect/{s}" for s in ("raw", "raw_external", "curated", "training_view")}
    curated = graph.get(dg.AssetKey(["vision", "Team_Detect", "curated"]))
    assert curated.group_name == "vision_curated"
    assert dg.AssetKey(["vision", "Team_Detect", "raw"]) in curated.parent_keys
    # the default translator keeps today's keys
    default = {k.to_user_string() for k in build_dataset_defs(clearml=ClearMLResource()).resolve_asset_graph().get_all_asset_keys()}
    assert default == {"datasets/shapes_raw", "datasets/shapes_raw_clearml_latest", "datasets/shapes_curated",
                       "datasets/shapes_training_view"}
