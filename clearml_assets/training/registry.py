"""Champion / challenger: which registered model holds the ``champion`` tag, and moving it.

Reads go through ``ClearMLClient`` (``models.get_all``); the tag moves are ``models.update``
calls with the whole new tag list (the real server replaces ``tags``). A model's figures live in
its metadata (``models.add_or_update_metadata``, written by the training run), one entry per
metric short name, so the champion's figure is read back without touching its task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


CHAMPION_TAG = "champion"
_MODEL_FIELDS = ["id", "name", "tags", "metadata", "task", "project", "created", "uri"]


@dataclass(frozen=True)
class ClearMLModelRecord:
    """A registered model as the registry sees it."""

    id: str
    name: str
    tags: tuple[str, ...]
    task: str | None
    metadata: dict[str, str]

    def metric(self, name: str) -> float | None:
        """The model's recorded value of metric ``name``, or None if absent or not a number."""
        try:
            value = float(self.metadata[name])
        except (KeyError, TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ClearMLPromotionDecision:
    """Outcome of comparing a challenger with the current champion."""

    promote: bool
    metric: str
    challenger_value: float
    champion_value: float | None
    champion_model_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Plain values (picklable, JSON-able)."""
        return {"promote": self.promote, "metric": self.metric, "challenger_value": self.challenger_value,
                "champion_value": self.champion_value, "champion_model_id": self.champion_model_id,
                "reason": self.reason}


def _record(model: Any) -> ClearMLModelRecord:
    """The registry's view of a ``types.Model`` (metadata already flattened by the client layer)."""
    return ClearMLModelRecord(id=model.id, name=model.name, tags=tuple(model.tags), task=model.task,
                              metadata=dict(model.metadata))


def find_project_id(client: Any, project: str) -> str | None:
    """Id of the ClearML project named exactly ``project``, or None if it does not exist."""
    found = client.projects.find(project, search_hidden=True)
    return found.id if found else None


def find_champions(client: Any, project_id: str | None) -> list[ClearMLModelRecord]:
    """Models of the project tagged ``champion``, newest first (normally one; more after a race)."""
    if not project_id:
        return []
    models = client.models.iter(project=[project_id], tags=[CHAMPION_TAG], only_fields=_MODEL_FIELDS,
                                order_by=["-created"])
    return [_record(m) for m in models if CHAMPION_TAG in m.tags]


def get_model(client: Any, model_id: str) -> ClearMLModelRecord:
    """One model by id (``ClearMLRequestError`` naming the account when it does not exist)."""
    return _record(client.models.get(model_id, only_fields=_MODEL_FIELDS))


def decide_promotion(challenger_value: float, champion: ClearMLModelRecord | None, metric: str,
                     rule: str = "greater", min_delta: float = 0.0) -> ClearMLPromotionDecision:
    """Whether the challenger takes the champion tag.

    Args:
        challenger_value: The new model's main metric.
        champion: The current champion, or None when there is none.
        metric: Main metric short name (looked up in the champion's metadata).
        rule: ``"greater"`` (higher is better) or ``"less"``.
        min_delta: The challenger must be better by more than this.

    Returns:
        The decision, with both figures and a sentence saying why.
    """
    if rule not in ("greater", "less"):
        raise ValueError(f"promotion rule must be 'greater' or 'less', got {rule!r}")
    if not math.isfinite(challenger_value):
        return ClearMLPromotionDecision(False, metric, challenger_value, None,
                                        champion.id if champion else None,
                                        f"challenger {metric} is not a number; not promoted")
    if champion is None:
        return ClearMLPromotionDecision(True, metric, challenger_value, None, None,
                                        f"no current champion; promoted with {metric}={challenger_value:.4f}")
    champion_value = champion.metric(metric)
    if champion_value is None:
        return ClearMLPromotionDecision(True, metric, challenger_value, None, champion.id,
                                        f"champion {champion.id} has no recorded {metric}; promoted with "
                                        f"{metric}={challenger_value:.4f}")
    gain = challenger_value - champion_value if rule == "greater" else champion_value - challenger_value
    promote = gain > min_delta
    verb = "beats" if promote else "does not beat"
    return ClearMLPromotionDecision(promote, metric, challenger_value, champion_value, champion.id,
                                    f"challenger {metric}={challenger_value:.4f} {verb} champion "
                                    f"{champion.id} {metric}={champion_value:.4f} (rule {rule}, "
                                    f"min_delta {min_delta:g})")


def _set_tags(client: Any, model: ClearMLModelRecord, tags: list[str]) -> None:
    client.models.set_tags(model.id, tags)


def promote_model(client: Any, model_id: str, project_id: str | None) -> list[str]:
    """Give ``model_id`` the champion tag and take it from every other model of the project.

    The new champion is tagged first, so the project always has a champion between the calls.

    Returns:
        Ids of the models that lost the tag.
    """
    model = get_model(client, model_id)
    if CHAMPION_TAG not in model.tags:
        _set_tags(client, model, [*model.tags, CHAMPION_TAG])
    demoted = []
    for previous in find_champions(client, project_id):
        if previous.id != model_id:
            _set_tags(client, previous, [t for t in previous.tags if t != CHAMPION_TAG])
            demoted.append(previous.id)
    return demoted
