"""Curate a raw folder: keep valid frames, split them by content hash, write the manifest."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import DatasetValidationError
from ..spreadsheet import safe_frame
from .manifest import build_manifest, write_manifest
from .validation import SourceScan

REJECTED_CSV = "rejected.csv"
CLASSES_TXT = "classes.txt"


def split_for(sha256: str, val_fraction: float, seed: int = 0) -> str:
    """Deterministic split of one frame from its content hash alone.

    Adding or removing other files never moves a frame: the decision only reads this frame's
    hash, the seed and the fraction.
    """
    point = int.from_bytes(hashlib.sha256(f"{seed}:{sha256}".encode()).digest()[:8], "big") / 2**64
    return "val" if point < val_fraction else "train"


@dataclass
class CuratedFolder:
    """What ``write_curated_folder`` produced."""

    folder: Path
    manifest: pd.DataFrame
    rejected: pd.DataFrame


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same bytes, no copy), or copy across filesystems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_curated_folder(scan: SourceScan, out: Path, *, val_fraction: float, seed: int, source: str,
                         on_invalid: str = "exclude") -> CuratedFolder:
    """Write the curated tree: valid frames at their raw paths, ``classes.txt``, the manifest, rejects.

    Frames keep the raw dataset's relative paths so ClearML stores only the delta against the raw
    version (unchanged files are inherited from the parent, not uploaded).

    Args:
        scan: Result of ``scan_source`` on the raw folder.
        out: Empty target folder.
        val_fraction: Share of frames in ``val`` (0..1).
        seed: Split seed.
        source: Written to the manifest's ``source`` column (the raw dataset id).
        on_invalid: ``"exclude"`` reports and leaves out bad files; ``"fail"`` raises.

    Raises:
        DatasetValidationError: ``on_invalid="fail"`` with issues, or no valid frame at all.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetValidationError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if on_invalid not in ("exclude", "fail"):
        raise DatasetValidationError(f"on_invalid must be 'exclude' or 'fail', got {on_invalid!r}.")
    issues_md = {"issues": "\n".join(str(i) for i in scan.issues[:200])}
    if scan.issues and on_invalid == "fail":
        raise DatasetValidationError(
            f"{len(scan.issues)} file(s) in {scan.folder} failed validation (on_invalid='fail'):\n"
            f"{scan.issues_text()}", metadata=issues_md)
    if not scan.frames:
        raise DatasetValidationError(
            f"No valid frame in {scan.folder}; every file failed validation:\n{scan.issues_text()}",
            metadata=issues_md)
    out.mkdir(parents=True, exist_ok=True)
    for frame in scan.frames:
        link_or_copy(scan.folder / frame.image, out / frame.image)
        link_or_copy(scan.folder / frame.label, out / frame.label)
    (out / CLASSES_TXT).write_text("".join(f"{n}\n" for n in scan.class_names))
    splits = {f.frame_id: split_for(f.sha256, val_fraction, seed) for f in scan.frames}
    manifest = build_manifest(scan.frames, splits, scan.class_names, source)
    write_manifest(manifest, out)
    rejected = pd.DataFrame([vars(i) for i in scan.issues], columns=["path", "problem", "detail"])
    safe_frame(rejected).to_csv(out / REJECTED_CSV, index=False, lineterminator="\n")  # no live formulas
    return CuratedFolder(folder=out, manifest=manifest, rejected=rejected)
