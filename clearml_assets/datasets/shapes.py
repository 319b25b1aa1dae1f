"""A small, deterministic object-detection data set: coloured shapes on noise, YOLO labels.

Every image is drawn from its own random stream derived from ``(seed, index)``, so growing
the set keeps the earlier images byte-identical, and the boxes are exact by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEMO_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
# One clear hue per class (with jitter) so a few CPU epochs are enough to learn the set.
_CLASS_RGB = {0: (230, 40, 40), 1: (40, 200, 60), 2: (50, 90, 240)}


@dataclass(frozen=True)
class DemoDataInfo:
    """What ``generate_demo_dataset`` wrote."""

    folder: Path
    images: int
    objects: int
    class_names: tuple[str, ...]


def _draw_shape(draw: ImageDraw.ImageDraw, cls: int, cx: float, cy: float, half: float,
                colour: tuple[int, int, int]) -> tuple[float, float, float, float]:
    """Draw one shape and return its exact box ``(x0, y0, x1, y1)`` in pixels."""
    if cls == 0:
        box = (cx - half, cy - half, cx + half, cy + half)
        draw.ellipse(box, fill=colour)
        return box
    if cls == 1:
        box = (cx - half, cy - half, cx + half, cy + half)
        draw.rectangle(box, fill=colour)
        return box
    # Upright isosceles triangle inscribed in the square box.
    points = [(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)]
    draw.polygon(points, fill=colour)
    return (cx - half, cy - half, cx + half, cy + half)


def render_demo_image(index: int, seed: int = 0, size: int = 160, max_objects: int = 3
                      ) -> tuple[Image.Image, list[tuple[int, float, float, float, float]]]:
    """Render image ``index`` of the demo set and its YOLO boxes ``(cls, cx, cy, w, h)`` (normalized).

    Args:
        index: Position in the set; with ``seed`` it fully determines the image.
        seed: Set seed.
        size: Width and height in pixels.
        max_objects: At most this many non-overlapping shapes (at least one).
    """
    rng = np.random.default_rng([seed, index])
    noise = rng.integers(60, 140, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    draw = ImageDraw.Draw(image)
    placed: list[tuple[float, float, float]] = []
    boxes: list[tuple[int, float, float, float, float]] = []
    wanted = int(rng.integers(1, max_objects + 1))
    for _ in range(wanted * 20):
        if len(boxes) == wanted:
            break
        half = float(rng.integers(size // 9, size // 5))
        cx = float(rng.integers(int(half) + 1, size - int(half) - 1))
        cy = float(rng.integers(int(half) + 1, size - int(half) - 1))
        if any(math.hypot(cx - px, cy - py) < (half + ph) * 1.05 for px, py, ph in placed):
            continue
        cls = int(rng.integers(0, len(DEMO_CLASSES)))
        jitter = rng.integers(-25, 26, size=3)
        colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(_CLASS_RGB[cls], jitter))
        x0, y0, x1, y1 = _draw_shape(draw, cls, cx, cy, half, colour)
        placed.append((cx, cy, half))
        boxes.append((cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    return image, boxes


def format_yolo_label(boxes: list[tuple[int, float, float, float, float]]) -> str:
    """YOLO label text: one ``cls cx cy w h`` line per box."""
    return "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)


def generate_demo_dataset(out: Path | str, images: int = 160, seed: int = 0, size: int = 160,
                          start: int = 0) -> DemoDataInfo:
    """Write the demo set: ``images/shape_NNNNN.png``, ``labels/shape_NNNNN.txt`` and ``classes.txt``.

    Args:
        out: Target folder (created; existing files with the same names are overwritten).
        images: Number of images.
        seed: Set seed; the same seed always gives byte-identical files.
        size: Image side in pixels.
        start: Index of the first image (to extend a set without touching earlier files).

    Returns:
        Counts of what was written.
    """
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    folder = Path(out).expanduser()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("".join(f"{n}\n" for n in DEMO_CLASSES))
    objects = 0
    for index in range(start, start + images):
        image, boxes = render_demo_image(index, seed=seed, size=size)
        stem = f"shape_{index:05d}"
        image.save(folder / "images" / f"{stem}.png", format="PNG", optimize=False)
        (folder / "labels" / f"{stem}.txt").write_text(format_yolo_label(boxes))
        objects += len(boxes)
    return DemoDataInfo(folder=folder, images=images, objects=objects, class_names=DEMO_CLASSES)
