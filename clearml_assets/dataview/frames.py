"""Frames as ClearML's ``FrameGroup``/``SingleFrame`` as far as the seed uses them: ``frame["image"]`` and the other
sources of the frame (``label``, ``mask``), each with ``get_local_source()``; ``frame.metadata`` (the manifest row);
``frame.rois`` (the YOLO boxes, each with its ``label``). Building a frame reads no image data."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from ..datasets.validation import label_path_for, parse_label
from .catalog import VersionContents
from .errors import DataViewFetchError
from .fetch import Fetcher
from .masks import render_box_mask
from .store import FetchError, StoredFile

DERIVED_MASK = "derived: rendered from the YOLO labels"


@dataclass(frozen=True)
class ROI:
    """A region of interest: one YOLO box, in pixels.

    Attributes:
        label: Its labels (ClearML ROIs carry a list; a YOLO box has one: the class name).
        label_enum: The YOLO class id.
        bbox: ``(x, y, width, height)`` of the box in pixels, from the top-left corner.
        poly: The box as a polygon ``[x0, y0, x1, y0, x1, y1, x0, y1]`` in pixels.
        confidence: 1.0 (labels, not predictions).
        id: The box's line in the label file (``"0"``, ``"1"``, ...).
    """

    label: list[str]
    label_enum: int
    bbox: tuple[float, float, float, float]
    poly: list[float]
    confidence: float = 1.0
    id: str = ""


@dataclass
class VersionFrames:
    """What the frames of one version share: its contents, the fetcher, and (read once) its class names."""

    contents: VersionContents
    fetcher: Fetcher
    class_names: tuple[str, ...] | None = field(default=None)

    def local_path(self, frame_id: str, source_id: str, stored: StoredFile, timeout: float | None = None) -> Path:
        """The local copy of a frame's file, or ``DataViewFetchError`` naming the frame and the reason."""
        try:
            self.fetcher.register([stored], self.contents.chunks)
            return self.fetcher.local_path(stored, timeout)
        except FetchError as exc:
            raise DataViewFetchError(frame_id, source_id, stored.relative_path, str(self.contents.ref),
                                     str(exc)) from None

    def names(self, frame_id: str) -> tuple[str, ...]:
        """The class names (``classes.txt`` of the version); empty if it has none."""
        if self.class_names is None:
            stored = self.contents.files.get("classes.txt")
            text = self.local_path(frame_id, "classes", stored).read_text(encoding="utf-8") if stored else ""
            self.class_names = tuple(line.strip() for line in text.splitlines() if line.strip())
        return self.class_names


class SingleFrame:
    """One source of a frame (its image, label file or mask), as ClearML's ``SingleFrame``."""

    __slots__ = ("frame", "id", "stored", "derived")

    def __init__(self, frame: "FrameGroup", source_id: str, stored: StoredFile | None, derived: str = ""):
        self.frame, self.id, self.stored, self.derived = frame, source_id, stored, derived

    @property
    def source(self) -> str:
        """The file's path in the dataset version (for a derived mask: what it is rendered from)."""
        return self.stored.relative_path if self.stored else self.derived

    @property
    def metadata(self) -> dict[str, Any]:
        """The frame's metadata (its manifest row)."""
        return self.frame.metadata

    @property
    def rois(self) -> list[ROI]:
        """The frame's boxes on its image source; none on the others."""
        return self.frame.rois if self.id == "image" else []

    def get_local_source(self, raise_on_error: bool = True, timeout: float | None = None) -> str | None:
        """The local path of this source, downloaded (or waited for, if ``prefetch_files()`` is at it) first.

        Args:
            raise_on_error: Raise ``DataViewFetchError`` (naming the frame, the source and why) if it cannot
                be fetched; False returns None instead.
            timeout: Seconds to wait (default: the view's ``fetch_timeout_seconds``).
        """
        try:
            if self.stored is not None:
                return str(self.frame.shared.local_path(self.frame.id, self.id, self.stored, timeout))
            return str(self.frame.derived_mask(timeout))
        except DataViewFetchError:
            if raise_on_error:
                raise
            return None

    def __repr__(self) -> str:
        return f"SingleFrame(id={self.id!r}, source={self.source!r})"


class FrameGroup(Mapping):
    """A frame: its sources by id (``frame["image"]``), ``metadata``, ``rois``; as ClearML's ``FrameGroup``."""

    def __init__(self, shared: VersionFrames, frame_id: str, metadata: dict[str, Any],
                 sources: dict[str, StoredFile | None]):
        self.shared, self.id, self.metadata = shared, frame_id, metadata
        self._sources = {key: SingleFrame(self, key, stored, "" if stored else DERIVED_MASK)
                         for key, stored in sources.items()}
        self._rois: list[ROI] | None = None

    @property
    def dataset_id(self) -> str:
        return self.shared.contents.ref.id

    @property
    def dataset_name(self) -> str:
        return self.shared.contents.ref.name

    @property
    def version_name(self) -> str:
        return self.shared.contents.ref.version

    def __getitem__(self, source_id: str) -> SingleFrame:
        try:
            return self._sources[source_id]
        except KeyError:
            raise KeyError(f"frame {self.id!r} has no source {source_id!r}; its sources: "
                           f"{', '.join(self._sources)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def __repr__(self) -> str:
        return f"FrameGroup(id={self.id!r}, sources={list(self._sources)}, dataset={self.dataset_name!r})"

    @property
    def rois(self) -> list[ROI]:
        """The boxes of the frame's YOLO label file (fetched on first use), in pixels of its image."""
        if self._rois is None:
            self._rois = self._read_rois()
        return self._rois

    def _read_rois(self) -> list[ROI]:
        label = self._sources.get("label")
        if label is None or label.stored is None:
            return []
        text = self.shared.local_path(self.id, "label", label.stored).read_text(encoding="utf-8")
        names = self.shared.names(self.id)
        boxes, problems = parse_label(text, len(names) if names else 1 << 31)
        if problems:
            raise DataViewFetchError(self.id, "label", label.stored.relative_path, str(self.shared.contents.ref),
                                     "its YOLO labels are invalid: " + "; ".join(problems[:3]))
        width, height = self.image_size()
        rois = []
        for number, (cls, cx, cy, w, h) in enumerate(boxes):
            x0, y0, bw, bh = (cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height
            rois.append(ROI(label=[names[cls] if cls < len(names) else str(cls)], label_enum=cls,
                            bbox=(x0, y0, bw, bh), poly=[x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh],
                            id=str(number)))
        return rois

    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the image: from the metadata when the manifest has it, else from the file."""
        width, height = self.metadata.get("width"), self.metadata.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return width, height
        from PIL import Image

        with Image.open(self["image"].get_local_source()) as image:
            return image.size

    def derived_mask(self, timeout: float | None = None) -> Path:
        """The box mask of the frame (class id + 1 per pixel, 0 for background), rendered once into the cache."""
        label = self._sources["label"].stored
        target = self.shared.fetcher.store.root / self.dataset_id / "masks" / (
            hashlib.sha256(self.id.encode()).hexdigest()[:32] + ".png")
        if not target.is_file():
            self.shared.local_path(self.id, "mask", label, timeout)
            render_box_mask(self.rois, self.image_size(), target)
        return target


def frame_sources(contents: VersionContents, image: str, label: str | None) -> dict[str, StoredFile | None]:
    """The sources of a frame: ``image``, ``label`` when the version has it, ``mask``: a stored mask
    (``masks/<name>.png`` beside ``images/``) or one rendered from the labels."""
    files = contents.files
    sources: dict[str, StoredFile | None] = {"image": files[image]}
    if label and label in files:
        sources["label"] = files[label]
    stored_mask = _mask_path_for(PurePosixPath(image))
    if stored_mask in files:
        sources["mask"] = files[stored_mask]
    elif "label" in sources:
        sources["mask"] = None
    return sources


def _mask_path_for(image: PurePosixPath) -> str:
    """``images/x.jpg`` -> ``masks/x.png``: the folder the label path puts ``labels`` in; "" without one."""
    label = PurePosixPath(label_path_for(image))
    changed = [i for i, (a, b) in enumerate(zip(image.parts[:-1], label.parts[:-1])) if a != b]
    if not changed:
        return ""
    parts = list(label.parts)
    parts[changed[0]] = "masks"
    return str(PurePosixPath(*parts).with_suffix(".png"))


def raw_rows(contents: VersionContents) -> list[dict[str, Any]]:
    """Metadata rows for a version without a frames manifest (a raw version): one per image file."""
    from ..datasets.validation import IMAGE_SUFFIXES

    rows = []
    for rel, stored in sorted(contents.files.items()):
        path = PurePosixPath(rel)
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.parts[0] == "masks":
            continue
        label = str(label_path_for(path))
        if label not in contents.files and str(path.with_suffix(".txt")) in contents.files:
            label = str(path.with_suffix(".txt"))
        rows.append({"frame_id": path.stem, "image": rel, "label": label if label in contents.files else "",
                     "bytes": stored.size, "sha256": stored.sha256 or ""})
    return rows


__all__ = ["DERIVED_MASK", "FrameGroup", "ROI", "SingleFrame", "VersionFrames", "frame_sources", "raw_rows"]
