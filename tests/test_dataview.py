"""The seed's DataView over dataset versions the project made on the embedded local server.

The dataset assets are materialized once (module fixture) in a temporary ``CLEARML_ASSETS_HOME`` whose ``local``
account is the embedded server (free ports), the training view chosen by a Lucene-style frame query. Then: the
seed's PyTorch dataset code runs in a fresh process with only its import changed; the account follows the
SDK's own configuration (``Task.set_credentials`` in that process); ``prefetch_files()`` runs in the background
and a failed download surfaces at ``get_local_source()`` naming the frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from clearml_assets.accounts import ClearMLAccount
from clearml_assets.datasets import build_dataset_defs
from clearml_assets.datasets.shapes import generate_demo_dataset
from clearml_assets.dataview import DataView, DataViewError, DataViewFetchError, FrameQueryError
from clearml_assets.dataview.account import dataview_account
from clearml_assets.local_server.ensure import running_local_server
from clearml_assets.resource import ClearMLResource

from conftest import REPO, stop_embedded_server
from fault_proxy import FaultProxy

PROJECT = "dataview_test"
TRAIN_QUERY = 'meta.split:"train" AND NOT rois.label:circle'
LOCAL_PORTS = {f"CLEARML_ASSETS_LOCAL_{part}_PORT": "0" for part in ("API", "FILES", "WEB")}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Raw, curated and training view versions made by the dataset assets on the embedded server of a new home."""
    home = tmp_path_factory.mktemp("dataview") / "home"
    saved = {k: os.environ.get(k) for k in ("CLEARML_ASSETS_HOME", *LOCAL_PORTS)}
    os.environ.update({"CLEARML_ASSETS_HOME": str(home), **LOCAL_PORTS})
    try:
        resource = ClearMLResource(home=str(home))
        src = home.parent / "src"
        generate_demo_dataset(src, images=24, seed=1, size=96)
        defs = build_dataset_defs(dataset_project=PROJECT, clearml=resource)
        result = dg.materialize([*defs.assets], resources={"clearml": resource}, run_config={"ops": {
            "datasets__shapes_raw": {"config": {"source_folder": str(src), "demo": False}},
            "datasets__shapes_training_view": {"config": {"train_query": TRAIN_QUERY,
                                                          "val_query": 'meta.split:"val"'}}}})
        view = next(m for m in result.asset_materializations_for_node("datasets__shapes_training_view"))
        yield SimpleNamespace(home=home, resource=resource, src=src, view_id=view.metadata["dataset_id"].value,
                              splits=view.metadata["split_counts"].value)
    finally:
        stop_embedded_server(home)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


SEED_DATASET = '''
import imageio
import numpy as np
import torch
from clearml_assets import dataview as allegroai   # the seed: import allegroai


class SegmentationDataset(torch.utils.data.Dataset):
    """The seed's src/datasets/segmentation_allegro_dataset.py core (its README's excerpt)."""

    def __init__(self, dataset_name, version_name, frame_query, transforms=None):
        self.dataset_name, self.version_name, self.frame_query = dataset_name, version_name, frame_query
        self.transforms = transforms
        self.dataview = allegroai.DataView()
        self.dataview.add_query(
            dataset_name=self.dataset_name,
            version_name=self.version_name,
            frame_query=self.frame_query,
        )
        self.dataview.prefetch_files()
        self.data = self.dataview.to_list()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, n):
        frame = self.data[n]
        image = imageio.imread(frame["image"].get_local_source())
        mask = imageio.imread(frame["mask"].get_local_source())
        return torch.from_numpy(np.asarray(image)), torch.from_numpy(np.asarray(mask).astype("int64"))
'''

SEED_MODULE = '''
import json, sys
import torch
query = ""
train = SegmentationDataset("shapes_training_view", "1.0.0", frame_query=query + 'meta.split:"train"')
validation = SegmentationDataset("shapes_training_view", "1.0.0", frame_query=query + 'meta.split:"val"')
seen = {"train": [], "val": []}
for name, dataset in (("train", train), ("val", validation)):
    for images, masks in torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2):
        seen[name].append([list(images.shape), list(masks.shape), sorted(set(masks.flatten().tolist()))])
labels = {name: sorted({roi.label[0] for f in d.data for roi in f.rois}) for name, d in (("train", train), ("val", validation))}
print(json.dumps({"seen": seen, "labels": labels, "ids": [f.id for f in train.data],
                  "account": train.dataview.account.source, "meta": train.data[0].metadata}, default=str))
'''


def _child_env(made, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(CLEARML_ASSETS_HOME=str(made.home), HOME=str(made.home.parent / "user_home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.update(extra)
    Path(env["HOME"]).mkdir(exist_ok=True)
    return env


def _run(code: str, env: dict[str, str], cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_seeds_dataset_code_runs_with_only_its_import_changed(made):
    """The seed's Dataset (imageio, frame["image"]/["mask"], prefetch_files, to_list) in a fresh process with no
    ClearML settings: DataView() reads the embedded server of CLEARML_ASSETS_HOME; DataLoader workers (forked)
    read the frames' files."""
    got = _run(SEED_DATASET + SEED_MODULE, _child_env(made), made.home.parent)
    assert got["account"] == "the embedded local server"
    # the images of the view's frames, in the home's cache (those the training view left out are not fetched)
    assert len(list((made.home / "dataview").rglob("shape_*.png"))) == sum(made.splits.values())
    for split in ("train", "val"):
        batches = got["seen"][split]
        assert sum(images[0] for images, _, _ in batches) == made.splits[split] > 0
        for images, masks, values in batches:
            assert images[1:] == [96, 96, 3] and masks[1:] == [96, 96] and set(values) <= {0, 1, 2, 3}
    # the view asset chose its training frames with a Lucene query: no circle in any of them
    assert "circle" not in got["labels"]["train"] and got["labels"]["train"]
    assert got["meta"]["split"] == "train" and got["meta"]["width"] == 96 and got["ids"] == sorted(got["ids"])


def test_the_account_is_the_one_the_sdk_of_the_process_uses(made, tmp_path):
    """Task.set_credentials (process-global SDK credentials, set in code) decides the server the view reads;
    ClearML's variables and clearml.conf do too, in the SDK's order; nothing set: the embedded server."""
    info = running_local_server(made.home)
    code = f'''
        import json
        from clearml import Task
        from clearml_assets import dataview as allegroai
        Task.set_credentials(api_host="{info.api_host}", web_host="{info.web_host}", files_host="{info.files_host}",
                             key="{info.access_key}", secret="{info.secret_key}")
        view = allegroai.DataView(cache_dir="{tmp_path / 'cache'}")
        view.add_query(dataset_name="shapes_curated", frame_query="rois.label:circle")
        frames = view.to_list()
        print(json.dumps({{"source": view.account.source, "name": view.account.name, "frames": len(frames),
                          "circles": all("circle" in f.metadata["classes"] for f in frames)}}))
    '''
    env = _child_env(made, CLEARML_ASSETS_HOME=str(tmp_path / "elsewhere"))  # no embedded server there
    got = _run(code, env, tmp_path)
    assert got["source"] == "the ClearML SDK's configuration of this process" and got["name"] == "default"
    assert got["frames"] > 0 and got["circles"]
    conf = tmp_path / "clearml.conf"
    conf.write_text(f'api {{ api_server: "{info.api_host}"\n credentials {{ access_key: "{info.access_key}"\n'
                    f' secret_key: "{info.secret_key}" }} }}\n')
    try:
        by_file = dataview_account(environ={"CLEARML_CONFIG_FILE": str(conf)})
        assert by_file.name == "default" and by_file.clearml.resolve("default")[1]["api_host"] == info.api_host
    finally:
        conf.unlink()  # no key stays in the test's files
    assert dataview_account(environ={}).name == "local"
    assert dataview_account(environ={"CLEARML_ASSETS_DEFAULT_ACCOUNT": "local"}).name == "local"
    with pytest.raises(Exception, match="personal"):
        dataview_account("personal", environ={})


def _proxied(made, proxy: FaultProxy) -> ClearMLResource:
    """The embedded server's account with its fileserver behind ``proxy``."""
    info = running_local_server(made.home)
    account = ClearMLAccount(api_host=info.api_host, web_host=info.web_host, files_host=proxy.url,
                             files_host_aliases=[info.files_host], access_key=info.access_key,
                             secret_key=info.secret_key)
    return ClearMLResource(accounts={"proxied": account}, default_account="proxied", home=str(made.home))


def _view(made, resource: ClearMLResource, cache: Path, query: str = 'meta.split:"val"') -> DataView:
    view = DataView(clearml=resource, cache_dir=cache, max_workers=2, fetch_timeout_seconds=120)
    view.add_query(dataset_name="shapes_curated", version_name="1.0.0", frame_query=query)
    return view


def test_prefetch_runs_in_the_background_and_get_local_source_waits_for_it(made, tmp_path):
    proxy = FaultProxy(running_local_server(made.home).files_host)
    try:
        gate = threading.Event()
        proxy.inject("hold", match=r"shapes_raw.*\.zip", gate=gate)  # the images' chunk: held until the gate opens
        view = _view(made, _proxied(made, proxy), tmp_path / "cache")
        frames = view.to_list()  # the manifest is in the curated version's own chunk: not held
        assert frames and all(f.metadata["split"] == "val" for f in frames)
        assert not any((tmp_path / "cache").rglob("*.png"))  # to_list() read no image
        view.prefetch_files()  # returns while the images' chunk is held at the proxy
        image = frames[0]["image"]
        assert not any((tmp_path / "cache").rglob(Path(image.source).name))
        gate.set()
        local = image.get_local_source()  # waits for the running prefetch, not a second download
        assert hashlib.sha256(Path(local).read_bytes()).hexdigest() == frames[0].metadata["sha256"]
        assert proxy.injected == {"hold": 1}
        assert all(Path(f["label"].get_local_source()).is_file() for f in frames)
    finally:
        proxy.close()


def test_a_failed_download_names_the_frame_and_is_tried_again(made, tmp_path):
    proxy = FaultProxy(running_local_server(made.home).files_host)
    try:
        proxy.inject("status", code=404, match=r"shapes_raw.*\.zip")
        view = _view(made, _proxied(made, proxy), tmp_path / "cache")
        frames = view.to_list()
        view.prefetch_files(wait=True)
        with pytest.raises(DataViewFetchError) as caught:
            frames[1]["image"].get_local_source()
        message = str(caught.value)
        assert f"Frame {frames[1].id!r}, source 'image'" in message and "HTTP 404" in message
        assert caught.value.relative_path == frames[1].metadata["image"]
        assert frames[1]["image"].get_local_source(raise_on_error=False) is None
        proxy.clear()  # the fileserver answers again: the next ask downloads
        assert Path(frames[1]["image"].get_local_source()).is_file()
        proxy.inject("truncate", match=r"shapes_raw.*\.zip")
        cut = _view(made, _proxied(made, proxy), tmp_path / "cache2").to_list()
        with pytest.raises(DataViewFetchError, match="source 'mask'.*(broke in the middle|cut short)"):
            cut[0]["mask"].get_local_source()  # a mask rendered from the labels: their download failed
    finally:
        proxy.close()


def test_a_chunk_that_does_not_match_its_recorded_hash_is_refused(made, tmp_path):
    chunk = next(p for p in (made.home / "server").rglob("*.zip") if "shapes_raw" in str(p))
    original = chunk.read_bytes()
    try:
        chunk.write_bytes(original[:-64] + bytes(64))
        frames = _view(made, made.resource, tmp_path / "cache").to_list()
        with pytest.raises(DataViewFetchError, match="does not match the SHA-256") as caught:
            frames[0]["image"].get_local_source()
        assert caught.value.frame_id == frames[0].id
        assert not any((tmp_path / "cache").rglob("*.png"))  # nothing unverified is left to be read
    finally:
        chunk.write_bytes(original)


def test_queries_rois_raw_versions_and_clear_errors(made, tmp_path):
    view = _view(made, made.resource, tmp_path / "cache", query="rois.label:triangle AND meta.n_objects:[2 TO *]")
    frames = view.to_list()
    assert frames and all(f.metadata["n_triangle"] > 0 and f.metadata["n_objects"] >= 2 for f in frames)
    frame = frames[0]
    boxes = [line.split() for line in Path(frame["label"].get_local_source()).read_text().splitlines()]
    assert [roi.label_enum for roi in frame.rois] == [int(b[0]) for b in boxes]
    assert "triangle" in {roi.label[0] for roi in frame.rois}
    x, y, w, h = frame.rois[0].bbox
    assert abs(x + w / 2 - float(boxes[0][1]) * 96) < 1e-6 and abs(h - float(boxes[0][4]) * 96) < 1e-6
    # frames (and the view) pickle for DataLoader workers started with spawn, and fetch there
    again = pickle.loads(pickle.dumps(view))
    copy = pickle.loads(pickle.dumps(frames[-1]))
    secret = running_local_server(made.home).secret_key.encode()
    assert secret not in pickle.dumps(view) and again.to_list()[0].id == frame.id
    assert hashlib.sha256(Path(copy["image"].get_local_source()).read_bytes()).hexdigest() == copy.metadata["sha256"]
    raw = DataView(clearml=made.resource, cache_dir=tmp_path / "cache")
    raw.add_query(dataset_name="shapes_raw", frame_query="meta.image:images/shape_0001?.png")
    assert [f.id for f in raw.to_list()] == [f"shape_{i:05d}" for i in range(10, 20)]
    first = raw.to_list()[0]
    assert set(first.metadata) == {"frame_id", "image", "label", "bytes", "sha256"} and list(first) == \
        ["image", "label", "mask"] and first.metadata["label"] == "labels/shape_00010.txt"
    # a raw version has no manifest: the boxes' names come from its classes.txt, the image size from the image
    assert first.rois and {roi.label[0] for roi in first.rois} <= {"circle", "square", "triangle"}
    assert first.image_size() == (96, 96)
    both = DataView(clearml=made.resource, cache_dir=tmp_path / "cache")
    both.add_query(dataset_name="shapes_curated", roi_query="circle")
    both.add_query(dataset_name="shapes_curated", frame_query="NOT rois.label:circle")
    assert len(both.to_list()) == 24  # queries add up, each frame once
    by_id = DataView(clearml=made.resource, cache_dir=tmp_path / "cache")
    by_id.add_query(dataset_id=made.view_id)
    assert len(by_id.to_list()) == sum(made.splits.values())
    wrong = _view(made, made.resource, tmp_path / "cache", query='meta.splt:"val"')
    with pytest.raises(FrameQueryError, match="Did you mean meta.split"):
        wrong.to_list()
    with pytest.raises(FrameQueryError, match="column 12 .*never closed"):
        DataView(clearml=made.resource).add_query(dataset_name="x", frame_query="meta.split:(val")
    missing = DataView(clearml=made.resource)
    missing.add_query(dataset_name="shapes_curated", version_name="9.9.9")
    with pytest.raises(DataViewError, match=r"no finalized version '9.9.9'; its versions: 1.0.0"):
        missing.to_list()


def test_a_stored_mask_is_the_frames_mask_source():
    """A version holding masks/<name>.png beside images/ serves it as frame["mask"]; without one, the mask is
    rendered from the labels; without labels there is none."""
    from clearml_assets.dataview.catalog import VersionContents, VersionRef
    from clearml_assets.dataview.frames import DERIVED_MASK, frame_sources
    from clearml_assets.dataview.store import StoredFile

    def version(*paths: str) -> VersionContents:
        files = {p: StoredFile(p, 1, None, "v1", "data") for p in paths}
        return VersionContents(VersionRef("v1", "d", "1.0.0", "p"), files=files)

    stored = frame_sources(version("a/images/x.jpg", "a/labels/x.txt", "a/masks/x.png"), "a/images/x.jpg",
                           "a/labels/x.txt")
    assert stored["mask"].relative_path == "a/masks/x.png"
    rendered = frame_sources(version("images/x.png", "labels/x.txt"), "images/x.png", "labels/x.txt")
    assert rendered["mask"] is None and DERIVED_MASK.startswith("derived")
    assert set(frame_sources(version("images/x.png"), "images/x.png", None)) == {"image"}


def test_unsafe_names_and_lying_chunks_are_refused(tmp_path):
    """state.json and chunks come from a server: a path that leaves its folder is refused before anything is read,
    and a member is placed only with the size and SHA-256 state.json records (nothing of a liar is left)."""
    import zipfile

    from clearml_assets.dataview.catalog import VersionRef, _files
    from clearml_assets.dataview.store import FileStore, StoredFile, safe_relative

    ref = VersionRef("v1", "d", "1.0.0", "p")
    for bad in ("../escape.png", "/etc/passwd", "a/../../b", "a\\b", "a\x00b", ""):
        assert safe_relative(bad) is None
        with pytest.raises(DataViewError, match="unsafe entry"):
            _files(ref, {"dataset_file_entries": [{"relative_path": bad, "parent_dataset_id": "v1"}]})
    with pytest.raises(DataViewError, match="unsafe entry"):
        _files(ref, {"dataset_file_entries": [{"relative_path": "x.png", "parent_dataset_id": "../v0"}]})
    archive = tmp_path / "chunk.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("good.txt", "other.txt", "long.txt"):
            zipped.writestr(name, b"0123456789")
    digest = hashlib.sha256(b"0123456789").hexdigest()
    store = FileStore(tmp_path / "cache", client_source=None)
    members = {"good.txt": (10, digest), "other.txt": (10, hashlib.sha256(b"something else").hexdigest()),
               "long.txt": (4, None), "gone.txt": (10, digest)}
    with zipfile.ZipFile(archive) as zipped:
        problems = {name: store._extract(zipped, stored, store.path_of(stored), tmp_path, set())
                    for name, (size, sha) in members.items()
                    for stored in [StoredFile(name, size, sha, "v1", "data")]}
    assert problems["good.txt"] == "" and (tmp_path / "cache/v1/data/good.txt").read_bytes() == b"0123456789"
    assert "SHA-256" in problems["other.txt"] and "ClearML recorded 4" in problems["long.txt"]
    assert "does not contain it" in problems["gone.txt"]
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == ["good.txt"]
