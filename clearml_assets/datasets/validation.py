"""Validate a folder of images and YOLO labels: what is usable, and what is wrong with which file."""

from __future__ import annotations

import hashlib
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import DatasetValidationError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
# Text files that are not YOLO labels: the class list and a training view's split lists.
CLASS_FILES = ("classes.txt", "train.txt", "val.txt")
# Boxes may touch the border; rounding in label writers gives tiny overshoots.
EDGE_TOLERANCE = 1e-4

Box = tuple[int, float, float, float, float]


@dataclass(frozen=True)
class Issue:
    """One problem with one file.

    Attributes:
        path: File at fault, relative to the scanned folder.
        problem: Short kind: ``corrupt_image``, ``bad_label``, ``orphan_label``, ``orphan_image``,
            ``duplicate_image``.
        detail: What exactly is wrong (line number, value, the duplicated file).
    """

    path: str
    problem: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} ({self.detail})"


@dataclass(frozen=True)
class Frame:
    """A valid image with its label file and boxes."""

    frame_id: str
    image: str
    label: str
    sha256: str
    bytes: int
    label_bytes: int
    width: int
    height: int
    boxes: tuple[Box, ...]


@dataclass
class SourceScan:
    """The result of ``scan_source``: valid frames and the issues that excluded the rest."""

    folder: Path
    class_names: tuple[str, ...]
    frames: list[Frame] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def issues_text(self, limit: int = 20) -> str:
        """The issues as lines, at most ``limit`` (then a count of the rest)."""
        lines = [str(i) for i in self.issues[:limit]]
        if len(self.issues) > limit:
            lines.append(f"... and {len(self.issues) - limit} more")
        return "\n".join(lines)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (streamed by the standard library)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_class_names(folder: Path) -> tuple[str, ...] | None:
    """Class names from ``classes.txt`` (one per line) in ``folder``, or None when absent."""
    for name in CLASS_FILES:
        path = Path(folder) / name
        if path.is_file():
            names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
            return names or None
    return None


def check_source_folder(folder: Path | str) -> Path:
    """Fail clearly unless ``folder`` is a readable directory holding at least one image.

    Raises:
        DatasetValidationError: Missing, not a directory, unreadable, or without images.
    """
    path = Path(folder).expanduser()
    if not path.exists():
        raise DatasetValidationError(f"Source folder {path} does not exist. Point the raw asset's "
                                     "source_folder at a folder of images and YOLO labels.")
    if not path.is_dir():
        raise DatasetValidationError(f"Source folder {path} is not a directory.")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetValidationError(f"Source folder {path} is not readable by this process; "
                                     "fix its permissions.", metadata={"folder": str(path)})
    try:
        images = [p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    except OSError as exc:
        raise DatasetValidationError(f"Source folder {path} could not be listed: {exc}") from exc
    if not images:
        raise DatasetValidationError(
            f"Source folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "an empty source makes no dataset version.", metadata={"folder": str(path)})
    return path


def label_path_for(image_rel: Path) -> Path:
    """The YOLO label path of an image: ``images`` -> ``labels`` in the path, suffix ``.txt``."""
    parts = list(image_rel.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_label(text: str, n_classes: int) -> tuple[list[Box], list[str]]:
    """Parse YOLO label text.

    Args:
        text: File contents, one ``cls cx cy w h`` line per box (blank lines ignored).
        n_classes: Number of classes; ids must be ``0..n_classes-1``.

    Returns:
        The boxes and a list of problems (each naming the line); any problem makes the file invalid.
    """
    boxes: list[Box] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            problems.append(f"line {number}: {len(fields)} fields, expected 5 (class cx cy w h)")
            continue
        try:
            cls_value = float(fields[0])
            coords = [float(v) for v in fields[1:]]
        except ValueError:
            problems.append(f"line {number}: not numbers: {line.strip()!r}")
            continue
        if not cls_value.is_integer():
            problems.append(f"line {number}: class id {fields[0]} is not an integer")
            continue
        cls = int(cls_value)
        if not 0 <= cls < n_classes:
            problems.append(f"line {number}: class id {cls} outside 0..{n_classes - 1}")
            continue
        if not all(math.isfinite(v) for v in coords):
            problems.append(f"line {number}: non-finite coordinate in {fields[1:]}")
            continue
        cx, cy, w, h = coords
        if not all(0.0 <= v <= 1.0 for v in coords):
            problems.append(f"line {number}: coordinates out of range [0, 1]: {fields[1:]}")
            continue
        if w <= 0 or h <= 0:
            problems.append(f"line {number}: empty box (w={w}, h={h})")
            continue
        if (cx - w / 2 < -EDGE_TOLERANCE or cx + w / 2 > 1 + EDGE_TOLERANCE
                or cy - h / 2 < -EDGE_TOLERANCE or cy + h / 2 > 1 + EDGE_TOLERANCE):
            problems.append(f"line {number}: box extends outside the image: {fields[1:]}")
            continue
        boxes.append((cls, cx, cy, w, h))
    return boxes, problems


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        img.load()
        return img.size


def _label_of(rel: Path, labels: set[Path]) -> Path:
    """The label file of an image: under ``labels/`` when there is one, else beside the image."""
    label_rel = label_path_for(rel)
    if label_rel not in labels and rel.with_suffix(".txt") in labels:
        return rel.with_suffix(".txt")
    return label_rel


def _read_pair(root: Path, rel: Path, label_rel: Path, class_count: int) -> tuple[int, int, list] | Issue:
    """The image's size and its label's boxes, or the issue that makes the pair unusable."""
    try:
        width, height = _image_size(root / rel)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return Issue(str(rel), "corrupt_image", f"{type(exc).__name__}: {exc}")
    try:
        text = (root / label_rel).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return Issue(str(label_rel), "bad_label", f"unreadable: {exc}")
    boxes, problems = parse_label(text, class_count)
    if problems:
        return Issue(str(label_rel), "bad_label", "; ".join(problems[:3]))
    return width, height, boxes


def scan_source(folder: Path | str, class_names: tuple[str, ...] | list[str] | None = None) -> SourceScan:
    """Validate every image/label pair under ``folder``.

    Corrupt images, invalid labels, orphans (a label without an image or an image without a label)
    and duplicate images (same bytes; the first path in sorted order is kept) become issues; the
    rest become frames. An empty label file is a valid background image.

    Args:
        folder: Source folder (``images/`` + ``labels/``, or labels next to images).
        class_names: The classes; by default read from ``classes.txt`` in ``folder``.

    Raises:
        DatasetValidationError: The folder is unusable or no class names are known.
    """
    root = check_source_folder(folder)
    names = tuple(class_names) if class_names else read_class_names(root)
    if not names:
        raise DatasetValidationError(
            f"No class names for {root}: put a classes.txt (one name per line) there or set class_names.")
    scan = SourceScan(folder=root, class_names=names)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    labels = {p for p in files if p.suffix == ".txt" and p.name not in CLASS_FILES}
    used_labels: set[Path] = set()
    by_hash: dict[str, str] = {}
    stems: defaultdict[str, int] = defaultdict(int)
    for rel in images:
        label_rel = _label_of(rel, labels)
        if label_rel not in labels:
            scan.issues.append(Issue(str(rel), "orphan_image", f"no label file {label_rel}"))
            continue
        used_labels.add(label_rel)
        read = _read_pair(root, rel, label_rel, len(names))
        if isinstance(read, Issue):
            scan.issues.append(read)
            continue
        sha = file_sha256(root / rel)
        if sha in by_hash:
            scan.issues.append(Issue(str(rel), "duplicate_image", f"same bytes as {by_hash[sha]}"))
            continue
        by_hash[sha] = str(rel)
        stems[rel.stem] += 1
        frame_id = rel.stem if stems[rel.stem] == 1 else f"{rel.stem}~{stems[rel.stem]}"
        width, height, boxes = read
        scan.frames.append(Frame(
            frame_id=frame_id, image=rel.as_posix(), label=label_rel.as_posix(), sha256=sha,
            bytes=(root / rel).stat().st_size, label_bytes=(root / label_rel).stat().st_size,
            width=width, height=height, boxes=tuple(boxes)))
    for rel in sorted(labels - used_labels):
        scan.issues.append(Issue(str(rel), "orphan_label", "no image with this name"))
    return scan
