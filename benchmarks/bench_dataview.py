"""The seed's DataView: what listing and prefetching a version cost, against the bare transfer and the SDK.

Run: ``python benchmarks/bench_dataview.py [--images 2000] [--size 128] [--rows 100000]``. Starts a local server in a
temporary folder, publishes a raw version of a generated source and a curated child (with its frames manifest), then
measures side by side in one run:

- ``to_list()`` on the curated version with a cold cache (state.json + the curated delta chunk: no image);
- ``prefetch_files(wait=True)`` of every frame, against the bare work of getting the same files on disk (download
  the chunk with the project's client, ``zipfile.extractall``: no checks) and against the SDK's
  ``Dataset.get(...).get_local_copy()`` in a child process (what a user would otherwise run; its interpreter
  start and SDK import included);
- a frame query on a manifest of ``--rows`` frames, the Lucene form against the pandas form of the same query.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def _publish(tmp: Path, clearml, images: int, size: int) -> tuple[str, str]:
    from clearml_assets.datasets.curation import write_curated_folder
    from clearml_assets.datasets.publish import publish_folder
    from clearml_assets.datasets.shapes import generate_demo_dataset
    from clearml_assets.datasets.validation import scan_source

    generate_demo_dataset(tmp / "src", images=images, seed=0, size=size)
    raw = publish_folder(clearml, None, project="bench", name="raw", folder=tmp / "src", parents=None,
                         reuse_any=False, description="bench raw", timeout=1800)
    write_curated_folder(scan_source(tmp / "src"), tmp / "curated", val_fraction=0.2, seed=0, source=raw.version.id)
    curated = publish_folder(clearml, None, project="bench", name="curated", folder=tmp / "curated",
                             parents=[raw.version.id], reuse_any=True, description="bench curated", timeout=1800)
    return raw.version.id, curated.version.id


def _timed(label: str, call):
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    print(f"{label:<52} {seconds:8.2f} s")
    return result, seconds


def _bare(client, url: str, folder: Path) -> None:
    import zipfile

    client.files.download(url, folder / "chunk.zip")
    with zipfile.ZipFile(folder / "chunk.zip") as zipped:
        zipped.extractall(folder / "files")


def _transfers(tmp: Path, clearml, raw_id: str, curated_id: str) -> int:
    from clearml_assets.dataview import DataView
    from clearml_assets.sdk_process import run_in_sdk_process

    view = DataView(clearml=clearml, cache_dir=tmp / "cache", max_workers=4)
    view.add_query(dataset_name="curated", version_name="1.0.0")
    frames, _ = _timed("to_list() (cold cache)", view.to_list)
    listed = _tree_bytes(tmp / "cache")
    _, prefetch = _timed(f"prefetch_files(wait=True): {len(frames)} frames", lambda: view.prefetch_files(wait=True))
    fetched = _tree_bytes(tmp / "cache") - listed
    client = clearml.client()
    chunk = next(row for row in client.tasks.get(raw_id).raw["execution"]["artifacts"] if row["key"] == "data")
    _, bare = _timed(f"bare: download the chunk ({chunk['content_size']:,} B) + extractall",
                     lambda: _bare(client, chunk["uri"], tmp / "bare"))
    _, sdk = _timed("SDK Dataset.get_local_copy() in a child process",
                    lambda: run_in_sdk_process("clearml_assets.datasets.sdk_ops:local_copy", curated_id,
                                               str(tmp / "sdk_copy"), env=clearml.sdk_env(), timeout=1800,
                                               what="bench SDK copy"))
    print(f"  to_list read {listed:,} B; prefetch placed {fetched:,} B (verified files)")
    print(f"  prefetch / bare = {prefetch / bare:.2f}; prefetch / SDK copy = {prefetch / sdk:.2f}")
    ok = len(frames) > 0 and all(Path(f["image"].get_local_source(timeout=5)).is_file() for f in frames)
    return 0 if ok else 1


def _queries(rows: int) -> None:
    import pandas as pd

    from clearml_assets.datasets.frame_query import frame_query_mask

    manifest = pd.DataFrame({"frame_id": [f"shape_{i:06d}" for i in range(rows)],
                             "split": ["train", "val", "train", "train", "val"] * (rows // 5),
                             "n_circle": [i % 3 for i in range(rows)],
                             "classes": ["circle square", "triangle", "square", "circle", ""] * (rows // 5)})
    pairs = [('meta.split:"train" AND meta.n_circle:0', 'split == "train" and n_circle == 0'),
             ('meta.split:(train OR val) AND meta.n_circle:[1 TO 2]', 'split in ["train", "val"] and 1 <= n_circle <= 2'),
             ("NOT rois.label:circle AND meta.frame_id:shape_0001*", None)]
    for lucene, pandas_form in pairs:
        lucene_mask, lucene_s = _timed(f"Lucene {lucene[:44]}", lambda: frame_query_mask(manifest, lucene))
        if pandas_form:
            pandas_mask, pandas_s = _timed(f"pandas {pandas_form[:44]}", lambda: frame_query_mask(manifest, pandas_form))
            same = lucene_mask.tolist() == pandas_mask.tolist()
            print(f"  same frames: {same}; Lucene / pandas form = {lucene_s / pandas_s:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from bench_world import local_world

    with local_world("bench_dataview_") as (tmp, _server, clearml):
        (raw_id, curated_id), _ = _timed(f"publish raw + curated ({args.images} images)",
                                         lambda: _publish(tmp, clearml, args.images, args.size))
        status = _transfers(tmp, clearml, raw_id, curated_id)
    _queries(args.rows)
    return status


if __name__ == "__main__":
    sys.exit(main())
