"""Typed records crossing the process boundary between the model asset and the training task.

The Dagster side builds a :class:`TrainingRequest` and sends it as Pipes extras; the training task
(on a ClearML agent or in a local subprocess) answers with a :class:`TrainingResult` as a Pipes custom
message. Both sides use these classes, so a renamed or missing field fails loudly on either side
instead of surfacing as a ``KeyError`` in a dict. Plain dataclasses: no Dagster import here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


# Ultralytics' names of the final box metrics, by the short names used in config and metadata.
METRIC_KEYS: dict[str, str] = {
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
    "mAP50": "metrics/mAP50(B)",
    "mAP50-95": "metrics/mAP50-95(B)",
}


def short_metric_name(name: str) -> str:
    """``"metrics/mAP50(B)"`` or ``"mAP50"`` -> ``"mAP50"``; raises ValueError for unknown names."""
    if name in METRIC_KEYS:
        return name
    for short, key in METRIC_KEYS.items():
        if name == key:
            return short
    raise ValueError(f"Unknown metric {name!r}: use one of {', '.join(METRIC_KEYS)}.")


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} got unknown fields {sorted(unknown)} (the two sides run different "
                         "versions of clearml_assets?)")
    return cls(**data)


@dataclass(frozen=True)
class TrainingRequest:
    """What to train, where to log it and how to decide promotion."""

    project: str
    task_name: str
    model_name: str
    dataset_id: str
    epochs: int
    imgsz: int
    batch: int
    model_yaml: str
    pretrained_weights: str
    seed: int
    device: str
    workers: int
    close_mosaic: int
    main_metric: str
    promotion_rule: str
    min_delta: float
    champion: dict[str, Any] | None = None
    """The current champion as ``ClearMLModelRecord`` fields, or None."""
    task_tags: list[str] = field(default_factory=list)
    model_tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingRequest":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class DatasetRef:
    """The exact ClearML dataset version a model was trained on."""

    id: str
    name: str
    project: str
    version: str


@dataclass(frozen=True)
class TrainingResult:
    """What a successful training registered and measured."""

    task_id: str
    project_id: str
    dataset: DatasetRef
    model_id: str
    model_uri: str
    model_name: str
    labels: dict[str, int]
    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    decision: dict[str, Any]
    """``ClearMLPromotionDecision.as_dict()``."""
    epochs: int
    train_seconds: float
    results: list[dict[str, float]]
    """Ultralytics ``results.csv`` rows, one per epoch."""
    wall_seconds: float
    phase_seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingResult":
        data = dict(data)
        data["dataset"] = DatasetRef(**data["dataset"])
        return _from_dict(cls, data)


@dataclass(frozen=True)
class EpochProgress:
    """One epoch's figures, sent to the Dagster run log while training runs."""

    epoch: int
    epochs: int
    losses: dict[str, float]
    metrics: dict[str, float]

    def line(self) -> str:
        """``epoch 3/20: box_loss=1.234 ... mAP50=0.412 mAP50-95=0.198``."""
        parts = [f"{k.split('/')[-1]}={v:.4g}" for k, v in self.losses.items()]
        parts += [f"{k}={v:.4g}" for k, v in self.metrics.items()]
        return f"epoch {self.epoch}/{self.epochs}: " + " ".join(parts)
