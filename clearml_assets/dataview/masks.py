"""Masks rendered from YOLO boxes, for views whose versions store labels but no masks (the seed's segmentation
code reads ``frame["mask"]``): one value per pixel, the class id + 1 of the box covering it, 0 for background."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def render_box_mask(rois: Sequence, size: tuple[int, int], target: Path) -> Path:
    """Write the mask of ``rois`` (``ROI``: ``bbox`` in pixels, ``label_enum``) for an image of ``size``.

    Boxes are drawn in the label file's order (a later box covers an earlier one where they overlap). 8-bit
    PNG up to 255 classes, 16-bit beyond. Written to a temporary name and renamed, so readers never see half.
    """
    from PIL import Image, ImageDraw

    width, height = size
    deep = any(roi.label_enum + 1 > 255 for roi in rois)
    mask = Image.new("I;16" if deep else "L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for roi in rois:
        x, y, w, h = roi.bbox
        box = [round(x), round(y), round(x + w) - 1, round(y + h) - 1]
        if box[2] >= box[0] and box[3] >= box[1]:
            draw.rectangle(box, fill=roi.label_enum + 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    mask.save(tmp, format="PNG")
    os.replace(tmp, target)
    return target
