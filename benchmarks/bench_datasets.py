"""Dataset versioning cost: a child version uploads only the delta, an unchanged source nothing.

Run: ``python benchmarks/bench_datasets.py [--images 2000] [--size 128]``. Starts a local server in a
temporary folder, publishes a raw version of a generated source, changes 5% of the images, publishes
again, then publishes the unchanged source once more. Uploaded bytes are measured as the growth of
the server's files folder, by kind: ``data`` (the version's zips), ``state`` (ClearML's state.json,
one entry per file of the whole version, so it grows with the version's size, not with the change)
and ``other`` (the preview images ClearML reports as debug samples of the version).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _files_by_kind(root: Path) -> dict[str, int]:
    """Bytes on the fileserver per kind: the artifact name after ``/artifacts/`` (``data``, ``state``, ...)."""
    kinds: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            parts = path.relative_to(root).parts
            kind = parts[parts.index("artifacts") + 1] if "artifacts" in parts[:-2] else "other"
            kinds[kind] = kinds.get(kind, 0) + path.stat().st_size
            if os.environ.get("BENCH_LIST_FILES"):
                print("   ", path.relative_to(root), path.stat().st_size)
    return kinds


def _files_bytes(root: Path) -> tuple[int, int]:
    kinds = _files_by_kind(root)
    data = kinds.get("data", 0)
    return data, sum(kinds.values()) - data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--changed", type=float, default=0.05)
    args = parser.parse_args()

    from clearml_assets.datasets.publish import publish_folder
    from clearml_assets.datasets.shapes import format_yolo_label, generate_demo_dataset, render_demo_image
    from bench_world import local_world

    with local_world("bench_datasets_") as (tmp, server, clearml):
        files_root = server.data_dir / "files"
        src = tmp / "src"
        t0 = time.perf_counter()
        generate_demo_dataset(src, images=args.images, seed=0, size=args.size)
        print(f"generated {args.images} images of {args.size}px in {time.perf_counter() - t0:.1f}s")

        def publish(label: str):
            before, kinds_before = _files_bytes(files_root), _files_by_kind(files_root)
            t = time.perf_counter()
            out = publish_folder(clearml, None, project="bench", name="raw", folder=src, parents=None,
                                 reuse_any=False, description=label, timeout=1800)
            after = _files_bytes(files_root)
            grown = (after[0] - before[0], after[1] - before[1])
            print(f"{label}: version {out.version.version} reused={out.reused} in {time.perf_counter() - t:.1f}s; "
                  f"server data grew {grown[0]:,} B (+{grown[1]:,} B state/previews), SDK delta "
                  f"{out.uploaded_files} files / {out.uploaded_bytes:,} B")
            kinds = _files_by_kind(files_root)
            growth = {k: v - kinds_before.get(k, 0) for k, v in sorted(kinds.items())}
            grew = ", ".join(f"{k} {v:,} B" for k, v in growth.items() if v) or "nothing"
            print(f"  fileserver growth by kind: {grew}")
            return out, grown

        first, _ = publish("v1 (full)")
        n_changed = max(1, int(args.images * args.changed))
        changed_bytes = 0
        for index in range(n_changed):
            stem = f"shape_{index * (args.images // n_changed):05d}"
            image, boxes = render_demo_image(100_000 + index, seed=1, size=args.size)
            image.save(src / "images" / f"{stem}.png")
            (src / "labels" / f"{stem}.txt").write_text(format_yolo_label(boxes))
            changed_bytes += (src / "images" / f"{stem}.png").stat().st_size
            changed_bytes += (src / "labels" / f"{stem}.txt").stat().st_size
        second, grown = publish(f"v2 ({n_changed} images changed, {changed_bytes:,} B)")
        ratio = grown[0] / changed_bytes
        ratio_all = (grown[0] + grown[1]) / changed_bytes
        print(f"child version data upload / changed bytes = {ratio:.3f} (target <= 1.1) "
              f"{'OK' if ratio <= 1.1 else 'OVER'}; including state.json and previews: {ratio_all:.3f}")
        third, grown3 = publish("v3 (unchanged)")
        nothing = third.reused and grown3 == (0, 0) and third.version.id == second.version.id
        print(f"unchanged source: uploaded {grown3[0] + grown3[1]} B, reused={third.reused} "
              f"{'OK' if nothing else 'FAIL'}")
        return 0 if ratio <= 1.1 and nothing and second.version.id != first.version.id else 1


if __name__ == "__main__":
    sys.exit(main())
