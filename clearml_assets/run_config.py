"""Run configuration: build-time defaults, run-config keys checked against op names, YAML files read clearly.

Dagster reads an asset's run config under its *op* name (``training__shapes_yolo``, ``local__clearml_task_archive``:
the asset key's parts joined by ``__``) and silently ignores an ``ops`` entry under any other name, such as the
asset's key. :func:`check_ops_config_keys`, called by every asset of this package, turns such an entry into an
error naming the op name to use.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Mapping, Sequence

import dagster as dg
from pydantic import ValidationError, create_model

from .errors import ClearMLConfigError


def config_with_defaults(base: type[dg.Config], defaults: Mapping[str, Any] | None, name: str = ""
                         ) -> type[dg.Config]:
    """``base`` with other defaults (what the launchpad and a run without config get); descriptions and
    constraints stay. Used by the components, whose attributes are the defaults of the assets' run config.

    Args:
        base: A run-config class (e.g. ``ClearMLTrainingConfig``).
        defaults: Field name -> default; empty or None returns ``base`` itself.
        name: Name of the new class (default: ``base``'s).

    Raises:
        ClearMLConfigError: A name that is not a field of ``base``, or a value its field refuses.
    """
    if not defaults:
        return base
    unknown = sorted(set(defaults) - set(base.model_fields))
    if unknown:
        raise ClearMLConfigError(f"{base.__name__} has no field {', '.join(map(repr, unknown))} "
                                 f"(fields: {', '.join(base.model_fields)}).")
    fields: dict[str, Any] = {}
    for field, value in defaults.items():
        info = copy.copy(base.model_fields[field])
        info.default, info.default_factory = value, None
        fields[field] = (info.annotation, info)
    try:
        base.model_validate(dict(defaults))
    except ValidationError as exc:
        wrong = [e for e in exc.errors() if e["loc"] and e["loc"][0] in defaults]
        if wrong:
            raise ClearMLConfigError(f"Invalid default for {base.__name__}: " + "; ".join(
                f"{e['loc'][0]}={defaults[e['loc'][0]]!r}: {e['msg']}" for e in wrong)) from None
    return create_model(name or base.__name__, __base__=base, __doc__=base.__doc__, **fields)


def _op_spellings(key: dg.AssetKey) -> set[str]:
    """How people write an asset's key where Dagster wants its op name."""
    return {key.to_user_string(), ".".join(key.path), key.path[-1], key.to_string() or ""}


def _asset_graph(context: dg.AssetExecutionContext) -> tuple[Any, bool]:
    """The code location's asset graph (True), else the run's job's, which a run in process may have cut to
    the selected assets (False)."""
    try:
        return context.repository_def.asset_graph, True
    except Exception:  # noqa: BLE001 - execute_in_process sets no repository on the step context
        return context.job_def.asset_layer.asset_graph, False


def _known_ops(context: dg.AssetExecutionContext) -> tuple[set[str], dict[str, str], bool]:
    """The op names of the code location's assets and the run's job, asset-key spellings -> op name, and
    whether every asset of the code location was seen."""
    names = set(context.job_def.graph.node_dict)
    spellings: dict[str, str] = {}
    graph, complete = _asset_graph(context)
    for assets_def in graph.assets_defs:
        if not assets_def.is_executable:
            continue
        op = assets_def.node_def.name
        names.add(op)
        for key in assets_def.keys:
            for spelling in _op_spellings(key):
                spellings.setdefault(spelling, op)
    return names, spellings, complete


def check_ops_config_keys(context: dg.AssetExecutionContext) -> None:
    """Fail on an ``ops`` run-config entry Dagster would silently ignore.

    Raises:
        ClearMLConfigError: An entry under an asset's key instead of its op name (the message gives the op
            name), or under a name that is no op of this code location (with the closest op names).
    """
    ops = (context.run.run_config or {}).get("ops") or {}
    if not ops:
        return
    names, spellings, complete = _known_ops(context)
    for entry in ops:
        if entry in names:
            continue
        if entry in spellings:
            op = spellings[entry]
            raise ClearMLConfigError(
                f"Run config key ops.{entry!r} names an asset, and Dagster ignores it: an asset's config goes under "
                f"its op name (the key's parts joined by '__'): use {{\"ops\": {{\"{op}\": {{\"config\": "
                "{...}}}} instead.", metadata={"key": entry, "op_name": op})
        if complete:
            close = difflib.get_close_matches(entry, sorted(names), n=3)
            raise ClearMLConfigError(
                f"Run config key ops.{entry!r} is no op of this code location, so Dagster would ignore its config"
                + (f"; did you mean {', '.join(map(repr, close))}?" if close else ".")
                + " An asset's config goes under its op name (the asset key's parts joined by '__', e.g. "
                "'training__shapes_yolo').", metadata={"key": entry})


def load_run_config_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Read and merge run-config YAML files as ``dagster ... -c`` does (a file listed first wins).

    Raises:
        ClearMLConfigError: A file missing, not YAML (naming the file, line and column) or not a mapping.
    """
    import yaml

    merged: dict[str, Any] = {}
    for path in reversed([Path(p) for p in paths]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ClearMLConfigError(f"Run config file {str(path)!r} cannot be read: {exc.strerror}.") from None
        except yaml.YAMLError as exc:
            raise ClearMLConfigError(f"Run config file {_yaml_error(path, exc)}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ClearMLConfigError(f"Run config file {str(path)!r} holds a {type(data).__name__}, not a mapping "
                                     "(it starts with keys such as ops: or resources:).")
        merged = _deep_merge(merged, data)
    return merged


def parse_run_config_json(text: str) -> dict[str, Any]:
    """Run config given as JSON on a command line.

    Raises:
        ClearMLConfigError: Not JSON (naming the line and column), or not an object.
    """
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClearMLConfigError(f"--config-json is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                                 f"{exc.colno}.") from None
    if not isinstance(data, dict):
        raise ClearMLConfigError(f"--config-json holds a {type(data).__name__}, not an object such as "
                                 '{"ops": {...}}.')
    return data


def _yaml_error(path: Path, exc: Exception) -> str:
    """``'file', line L, column C: problem`` from a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{str(path)!r}, line {mark.line + 1}, column {mark.column + 1}" if mark else repr(str(path))
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{where}: {problem}" + (f" ({context})" if context else "") + " — it is not valid YAML."


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (_deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict)
                       else value)
    return merged
