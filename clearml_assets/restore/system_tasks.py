"""Restoring the tasks that are more than tasks: reports and dataset versions come back as what they were.

A **report** is a hidden task (system tags ``hidden``, ``reports``) of type ``report`` in ``<project>/.reports``,
whose text is its ``report`` field (markdown); only ``reports.*`` makes one (``tasks.create`` has no such type).
The copy is made with ``reports.create`` in the restored ``.reports`` project, gets the source's system tags plus
the restore's own, its text with ``reports.update`` and is published with ``reports.publish`` when the source was.
The plots, scalars and debug samples a report embeds are the web app's ``/widgets/?objects=<task id>...`` links:
the ids of tasks (and models) restored into the same account, and the source web app's address, are replaced by
the copies' so the restored report shows the restored tasks.

A **dataset version** is a task (system tag ``dataset``) in ``<project>/.datasets/<name>`` whose ``state``
artifact (``state.json``) names the version and its parents by task id, as does its ``Dataset Struct``
configuration (the web app's lineage graph). The copy's state and configuration name the copy (and the copies
of its parents restored before it), so the SDK's ``Dataset.get`` of the copy reads the copy's files.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

REPORT_TYPE = "report"
REPORT_SYSTEM_TAGS = ("hidden", "reports")
DATASET_TAG = "dataset"
DATASET_STATE = "state"
DATASET_STRUCT = "Dataset Struct"
_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")

Mapped = Callable[[str], "str | None"]
"""The id of the copy of a source task or model in the target account, or None."""


def relink_ids(text: str, mapped: Mapped) -> tuple[str, int, int]:
    """``text`` with every 32-hex id that has a copy replaced by the copy's; returns ``(text, moved, kept)``."""
    copies = {source_id: mapped(source_id) for source_id in dict.fromkeys(_ID.findall(text))}
    moved = {k: v for k, v in copies.items() if v and v != k}
    if moved:
        text = _ID.sub(lambda m: moved.get(m.group(0), m.group(0)), text)
    return text, len(moved), sum(1 for v in copies.values() if not v)


# ------------------------------------------------------------------------------------------------ reports
def is_report(task: dict[str, Any]) -> bool:
    """Whether the archived task is a report."""
    return task.get("type") == REPORT_TYPE


def create_report(client, src: dict[str, Any], project_id: str, system_tags: Sequence[str]) -> str:
    """Make the copy of report ``src`` in the ``.reports`` project ``project_id``; returns its id.

    Args:
        client: The target account's client.
        src: The archived report task.
        project_id: The restored ``<project>/.reports`` project.
        system_tags: The copy's system tags besides the report's own (the restore's provenance and state).
    """
    report_id = client.reports.create(str(src.get("name") or "report"), project=project_id,
                                      tags=list(src.get("tags") or []), comment=str(src.get("comment") or ""))
    client.tasks.update(report_id, system_tags=sorted({*REPORT_SYSTEM_TAGS, *system_tags}))
    return report_id


def fill_report(client, src: dict[str, Any], report_id: str, mapped: Mapped,
                origins: tuple[str | None, str | None] = (None, None)) -> list[str]:
    """Write the report's text (its links moved to the restored copies) and publish it as the source was.

    Args:
        client: The target account's client.
        src: The archived report task.
        report_id: Its copy.
        mapped: See :data:`Mapped`.
        origins: The source's and the target's web app addresses (any URL of each), e.g.
            ``("https://app.clear.ml/projects/...", "http://127.0.0.1:8080/projects/...")``.

    Returns:
        Notes for the restore result.
    """
    text, moved, kept = relink_ids(str(src.get("report") or ""), mapped)
    old, new = (_origin(o) for o in origins)
    if moved and old and new and old != new:
        text = text.replace(f"{old}/widgets/", f"{new}/widgets/")
    assets = [str(a) for a in src.get("report_assets") or []]
    client.reports.update(report_id, report=text, report_assets=assets)
    if src.get("status") == "published":
        client.reports.publish(report_id, message=str(src.get("status_message") or ""))
    notes = []
    if moved:
        notes.append(f"the report's links to {moved} restored tasks or models point at their copies")
    if kept:
        notes.append(f"the report names {kept} ids with no copy in this account (kept as they were)")
    if assets:
        notes.append(f"the report's {len(assets)} embedded files stay at their source addresses")
    return notes


def _origin(url: str | None) -> str:
    parts = urlsplit(str(url or ""))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# ------------------------------------------------------------------------------------------- datasets
def is_dataset_version(task: dict[str, Any]) -> bool:
    """Whether the archived task is a dataset version."""
    return DATASET_TAG in (task.get("system_tags") or [])


def dataset_parents(archive) -> list[str]:
    """The source ids of the versions a dataset version's archived state says it builds on."""
    if not is_dataset_version(archive.task):
        return []
    for artifact, path in archive.artifacts():
        if artifact.get("key") == DATASET_STATE and path is not None and path.suffix == ".json":
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
                return [str(p) for p in (state.get("dependency_graph") or {}).get(archive.source_task_id) or []]
            except (OSError, ValueError, AttributeError):
                return []
    return []


def dataset_configuration(src: dict[str, Any], mapped: Mapped) -> dict[str, Any] | None:
    """The version's configuration with its lineage naming the copies; None when it has none to change."""
    configuration = src.get("configuration") or {}
    item = configuration.get(DATASET_STRUCT)
    if not isinstance(item, dict) or not item.get("value"):
        return None
    value, moved, _ = relink_ids(str(item["value"]), mapped)
    return {**configuration, DATASET_STRUCT: {**item, "value": value}} if moved else None


def dataset_state_file(artifact: dict[str, Any], path: Path, scratch: Path, mapped: Mapped,
                       notes: list[str]) -> Path:
    """The file to upload for artifact ``artifact`` of a dataset version: its state rewritten to name the copies
    (written under ``scratch``; the record's ``hash`` and ``content_size`` follow), any other artifact's own
    ``path``."""
    if artifact.get("key") != DATASET_STATE or path.suffix != ".json":
        return path
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path
    text, _, kept = relink_ids(json.dumps(state), mapped)
    if kept:
        notes.append(f"the dataset version's state names {kept} parent versions with no copy in this account: "
                     "Dataset.get of the copy needs them (restore them before this version)")
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / path.name
    out.write_text(text, encoding="utf-8")
    data = out.read_bytes()
    artifact.update(hash=hashlib.sha256(data).hexdigest(), content_size=len(data))
    return out
