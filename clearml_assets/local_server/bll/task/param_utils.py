"""Legacy task fields of old API versions (clearml-server ``bll/task/param_utils.py``): ``execution.parameters``
and ``model_desc`` (< 2.9), ``execution.model`` and ``output.model`` (< 2.13)."""

from __future__ import annotations

import copy

from ...core import ApiError, now_iso
from ...core.constants import DELETED_PREFIX  # noqa: F401  (re-exported)

LEGACY_TYPE = "legacy"
DEFAULT_SECTION = "Args"
TF_DEFINE = "TF_DEFINE"
# execution.model / output.model of API < 2.13 are models.input[0] / models.output[-1]
MODELS_COMPAT_MAX = (2, 13)
# execution.parameters / model_desc of API < 2.9 are the "legacy" typed hyperparams / configuration items
LEGACY_PARAMS_MAX = (2, 9)
LEGACY_FIELDS = ((("execution", "parameters"), "hyperparams", DEFAULT_SECTION),
                 (("execution", "model_desc"), "configuration", None))


def _split_name(full_name: str, default_section: str | None) -> tuple[str | None, str]:
    if default_section is None:
        return None, full_name
    section, _, name = full_name.partition("/")
    if section != TF_DEFINE:
        return default_section, full_name
    if not name:
        raise ApiError(400, 12, "Validation error: Parameter name cannot be empty")
    return section, name


def _without_legacy(data: dict, with_sections: bool) -> tuple[dict, int]:
    """``data`` without its legacy-typed items (empty sections dropped) and how many went."""
    removed = 0
    out: dict = {}
    for key, value in (data or {}).items():
        if with_sections:
            kept = {k: p for k, p in (value or {}).items() if (p or {}).get("type") != LEGACY_TYPE}
            removed += len(value or {}) - len(kept)
            if kept:
                out[key] = kept
        elif (value or {}).get("type") == LEGACY_TYPE:
            removed += 1
        else:
            out[key] = value
    return out, removed


def params_prepare_for_save(fields: dict, previous: dict | None = None) -> None:
    """The real ``params_prepare_for_save``: ``execution.parameters``/``model_desc`` become legacy-typed items
    of ``hyperparams`` (section ``Args``, or ``TF_DEFINE`` for ``TF_DEFINE/x``) and ``configuration``."""
    execution = fields.get("execution")
    if not isinstance(execution, dict):
        return
    for (_, old), new, default_section in LEGACY_FIELDS:
        legacy = execution.get(old)
        if legacy is None:
            continue
        if not fields.get(new) and previous and previous.get(new):
            kept, removed = _without_legacy(copy.deepcopy(previous[new]), default_section is not None)
            if not legacy and not removed:
                execution.pop(old)
                continue
            fields[new] = kept
        for full_name, value in (legacy or {}).items():
            section, name = _split_name(full_name, default_section)
            item = {"name": name, "type": LEGACY_TYPE, "value": str(value)}
            target = fields.setdefault(new, {})
            if section is not None:
                item["section"] = section
                target.setdefault(section, {})[name] = item
            else:
                target[name] = item
        execution.pop(old)
    for key in ("hyperparams", "configuration"):
        for section, value in (fields.get(key) or {}).items():
            if not section or (key == "hyperparams" and isinstance(value, dict) and any(not k for k in value)):
                raise ApiError(400, 12, f"Validation error: Empty {'section' if key == 'hyperparams' else 'configuration'}"
                                        f" name is not allowed")


def models_prepare_for_save(version: tuple[int, int], fields: dict) -> None:
    """API < 2.13: ``execution.model``/``output.model`` become ``models.input``/``models.output``."""
    if version >= MODELS_COMPAT_MAX:
        return
    for mode, (parent, key) in (("input", ("execution", "model")), ("output", ("output", "model"))):
        holder = fields.get(parent)
        if not isinstance(holder, dict) or holder.get(key) is None:
            continue
        value = holder.pop(key)
        models = fields.setdefault("models", {})
        models[mode] = [{"name": mode, "model": value, "updated": now_iso()}] if value else []


def unprepare_for_version(version: tuple[int, int], task: dict) -> dict:
    """A task as an old client expects it: legacy fields copied back (< 2.9), models in execution (< 2.13)."""
    if version < LEGACY_PARAMS_MAX:
        for (parent, old), new, with_sections in ((("execution", "parameters"), "hyperparams", True),
                                                  (("execution", "model_desc"), "configuration", False)):
            data = task.get(new) or {}
            items = ([p for section in data.values() for p in (section or {}).values()] if with_sections
                     else list(data.values()))
            legacy = [p for p in items if isinstance(p, dict) and p.get("type") == LEGACY_TYPE]
            if legacy:
                task.setdefault(parent, {})[old] = {
                    (f"{TF_DEFINE}/{p['name']}" if p.get("section") == TF_DEFINE else p["name"]): p.get("value")
                    for p in legacy}
    if version < MODELS_COMPAT_MAX:
        models = task.get("models") or {}
        if models.get("input"):
            task.setdefault("execution", {})["model"] = models["input"][0].get("model")
        if models.get("output"):
            task.setdefault("output", {})["model"] = models["output"][-1].get("model")
    return task
