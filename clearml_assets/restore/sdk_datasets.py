"""ClearML SDK work for copying dataset versions; runs only inside ``run_in_sdk_process`` (one account).

``clearml`` is imported inside the functions: the child sets the account's environment first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..datasets.sdk_ops import create_version
from ..types import DatasetVersionSpec


def read_chain(dataset_id: str, staging: str) -> list[dict[str, Any]]:
    """The version ``dataset_id`` and every ancestor, parents first, each downloaded whole into
    ``staging/<id>`` (its full content, as ``get_local_copy`` gives it)."""
    from clearml import Dataset

    graph = Dataset.get(dataset_id=dataset_id).get_dependency_graph()
    order: list[str] = []

    def visit(node: str) -> None:
        if node in order:
            return
        for parent in graph.get(node) or []:
            visit(parent)
        order.append(node)

    visit(dataset_id)
    chain = []
    for version_id in order:
        dataset = Dataset.get(dataset_id=version_id)
        folder = Path(staging) / version_id
        dataset.get_mutable_local_copy(target_folder=str(folder), overwrite=True)
        chain.append({"id": version_id, "name": dataset.name, "project": dataset.project,
                      "version": dataset.version, "tags": list(dataset.tags or []),
                      "parents": list(graph.get(version_id) or []), "folder": str(folder)})
    return chain


def write_chain(specs: list[dict[str, Any]], known: dict[str, str]) -> dict[str, str]:
    """Create the versions of ``specs`` not in ``known`` (source id -> target id), parents first, each
    with its parents mapped; returns ``known`` completed."""
    mapping = dict(known)
    for spec in specs:
        if spec["id"] in mapping:
            continue
        created = create_version(DatasetVersionSpec(
            name=spec["name"], project=spec["project"], version=spec["version"], folder=str(spec["folder"]),
            parents=tuple(mapping[p] for p in spec["parents"]), tags=tuple(spec.get("tags") or ())))
        mapping[spec["id"]] = created.id
    return mapping
