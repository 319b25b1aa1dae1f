"""A small picture of the training curves for the Dagster UI."""

from __future__ import annotations

import base64
import io
from typing import Sequence

from .records import METRIC_KEYS

_LOSSES = ("train/box_loss", "train/cls_loss", "val/box_loss", "val/cls_loss")
_METRICS = tuple((key, short) for short, key in METRIC_KEYS.items())  # one table of metric names


def render_training_curves(rows: Sequence[dict[str, float]], title: str = "") -> bytes:
    """PNG (about 640x260 px) of losses and validation metrics per epoch.

    Args:
        rows: Ultralytics ``results.csv`` rows (``epoch`` plus metric columns), one per epoch.
        title: Optional figure title.

    Returns:
        The PNG bytes.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(8, 3.25), dpi=80)
    loss_ax, metric_ax = fig.subplots(1, 2)
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(rows)]
    for key in _LOSSES:
        if any(key in r for r in rows):
            loss_ax.plot(epochs, [r.get(key, float("nan")) for r in rows], marker=".", label=key)
    for key, label in _METRICS:
        if any(key in r for r in rows):
            metric_ax.plot(epochs, [r.get(key, float("nan")) for r in rows], marker=".", label=label)
    loss_ax.set(title="losses", xlabel="epoch")
    metric_ax.set(title="validation", xlabel="epoch", ylim=(0, 1.02))
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "training curves") -> str:
    """Markdown that shows ``png`` inline (a data URI), for ``MetadataValue.md``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
