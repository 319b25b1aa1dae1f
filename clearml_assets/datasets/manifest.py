"""The frames manifest (one row per image) and the content hash of a dataset folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..spreadsheet import original_frame, safe_frame

from .validation import Frame, file_sha256

MANIFEST_PARQUET = "manifest.parquet"
MANIFEST_CSV = "manifest.csv"
# The parquet file is a binary re-encoding of the csv; its bytes depend on the pyarrow build,
# so it is left out of the content hash (the csv carries the same rows).
HASH_EXCLUDED = frozenset({MANIFEST_PARQUET})


def class_column(name: str) -> str:
    """Manifest column holding the per-frame count of class ``name`` (``n_<name>``)."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in name)
    return f"n_{safe}"


def build_manifest(frames: Iterable[Frame], splits: dict[str, str], class_names: tuple[str, ...],
                   source: str) -> pd.DataFrame:
    """One row per frame.

    Columns: ``frame_id, split, source, image, label, width, height, bytes, sha256, n_objects``,
    then ``n_<class>`` per class, then ``classes`` (space-separated names present).

    Args:
        frames: Valid frames.
        splits: ``frame_id -> "train" | "val"``.
        class_names: Class names by id.
        source: Where the frames came from (e.g. the raw dataset id).
    """
    rows = []
    for frame in frames:
        counts = [0] * len(class_names)
        for box in frame.boxes:
            counts[box[0]] += 1
        row = {
            "frame_id": frame.frame_id, "split": splits[frame.frame_id], "source": source,
            "image": frame.image, "label": frame.label, "width": frame.width, "height": frame.height,
            "bytes": frame.bytes, "sha256": frame.sha256, "n_objects": len(frame.boxes),
        }
        row.update({class_column(n): c for n, c in zip(class_names, counts)})
        row["classes"] = " ".join(n for n, c in zip(class_names, counts) if c)
        rows.append(row)
    columns = ["frame_id", "split", "source", "image", "label", "width", "height", "bytes", "sha256",
               "n_objects", *(class_column(n) for n in class_names), "classes"]
    frame_df = pd.DataFrame(rows, columns=columns)
    return frame_df.sort_values("frame_id", kind="stable").reset_index(drop=True)


def write_manifest(manifest: pd.DataFrame, folder: Path) -> None:
    """Write ``manifest.parquet`` and ``manifest.csv`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(folder / MANIFEST_PARQUET, index=False)
    safe_frame(manifest).to_csv(folder / MANIFEST_CSV, index=False, lineterminator="\n")  # no live formulas


def read_manifest(folder: Path) -> pd.DataFrame:
    """Read the manifest of a dataset folder (parquet, else csv)."""
    if (folder / MANIFEST_PARQUET).is_file():
        return pd.read_parquet(folder / MANIFEST_PARQUET)
    if (folder / MANIFEST_CSV).is_file():
        return original_frame(pd.read_csv(folder / MANIFEST_CSV, keep_default_na=False))
    raise FileNotFoundError(f"No {MANIFEST_PARQUET} or {MANIFEST_CSV} in {folder}")


def folder_content_hash(folder: Path) -> tuple[str, int, int]:
    """Content hash of a folder: SHA-256 over sorted ``relative path + file SHA-256`` lines.

    Returns:
        ``(hex hash, file count, total bytes)`` (counts include every file).
    """
    digest = hashlib.sha256()
    count = total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        count += 1
        total += path.stat().st_size
        if rel in HASH_EXCLUDED:
            continue
        digest.update(f"{rel}\t{file_sha256(path)}\n".encode())
    return digest.hexdigest(), count, total


def class_counts(manifest: pd.DataFrame, class_names: tuple[str, ...]) -> dict[str, int]:
    """Objects per class over the manifest's rows."""
    return {n: int(manifest[class_column(n)].sum()) if len(manifest) else 0 for n in class_names}


def split_counts(manifest: pd.DataFrame) -> dict[str, int]:
    """Frames per split (``train`` and ``val`` always present)."""
    counts = {"train": 0, "val": 0}
    if len(manifest):
        counts.update({str(k): int(v) for k, v in manifest["split"].value_counts().items()})
    return counts


def preview_markdown(manifest: pd.DataFrame, rows: int = 10) -> str:
    """The first ``rows`` rows as a Markdown table (sha256 shortened)."""
    head = manifest.head(rows).copy()
    if "sha256" in head:
        head["sha256"] = head["sha256"].str.slice(0, 12)
    head = head.drop(columns=[c for c in ("source",) if c in head])
    cols = list(head.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.itertuples(index=False)]
    if len(manifest) > rows:
        lines.append(f"\n{len(manifest) - rows} more rows in manifest.parquet / manifest.csv")
    return "\n".join(lines)
