"""Add ClearML task/project ids as archive partitions by hand (what the sensor and schedule do by themselves).

``dagster asset materialize --partition <id>`` only accepts partitions the Dagster instance already knows;
:func:`add_clearml_archive_partitions` (the ``clearml-assets add-partitions`` command) checks the ids on the
ClearML account and adds them, so the CLI and the launchpad can archive them.
"""

from __future__ import annotations

import unicodedata
from typing import Literal, Sequence

import dagster as dg

from ..archives.assets import (clearml_project_partitions, clearml_task_partitions, project_archive_key,
                               task_archive_key)
from ..errors import ClearMLConfigError
from ..resource import ClearMLResource

PartitionKind = Literal["task", "project"]


def materialize_command(account: str, partition: str, kind: PartitionKind = "task", dagster: str = "dagster") -> str:
    """The ``dagster asset materialize`` command archiving one partition of ``account`` (``dagster``: how to run
    Dagster's CLI, e.g. its full path)."""
    key = task_archive_key(account) if kind == "task" else project_archive_key(account)
    return (f"{dagster} asset materialize -m clearml_assets.definitions --select {key.to_user_string()} "
            f"--partition {partition}")


def clearml_name_tag(name: str | None, limit: int = 100) -> str:
    """A ClearML task or project name as a run tag / metadata value beside its id: control and format
    characters (newlines, RTL overrides) left out, at most ``limit`` characters."""
    text = "".join(c for c in str(name or "") if unicodedata.category(c)[0] != "C")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def add_clearml_archive_partitions(instance: dg.DagsterInstance, clearml: ClearMLResource, ids: Sequence[str], *,
                                   account: str | None = None, kind: PartitionKind = "task") -> list[str]:
    """Add ClearML task (or project) ids as partitions of the account's archive asset.

    Every id is checked on the account first; nothing is added unless all exist.

    Args:
        instance: The Dagster instance (persistent: ``DAGSTER_HOME``) to add the partitions to.
        clearml: The resource holding the account.
        ids: ClearML task ids (``kind="task"``) or project ids (``kind="project"``).
        account: Account name; default: the resource's default account.
        kind: ``"task"`` for ``<account>/clearml_task_archive``, ``"project"`` for the project archive.

    Returns:
        The ids that were not partitions yet (and now are).

    Raises:
        ClearMLConfigError: No ids, or some id does not exist on the account.
    """
    wanted = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not wanted:
        raise ClearMLConfigError(f"no ClearML {kind} ids given: pass one or more {kind} ids")
    client = clearml.client(account)
    rows = client.tasks.iter(id=wanted, only_fields=["id", "name"]) if kind == "task" else \
        client.projects.iter(id=wanted, only_fields=["id", "name"])
    found = {row.id: clearml_name_tag(row.name) for row in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ClearMLConfigError(
            f"ClearML account {client.account!r} has no {kind} with id {', '.join(map(repr, missing))}; "
            f"check the id (nothing was added)")
    parts = clearml_task_partitions(client.account) if kind == "task" else clearml_project_partitions(client.account)
    known = set(instance.get_dynamic_partitions(parts.name))
    new = [i for i in wanted if i not in known]
    if new:
        instance.add_dynamic_partitions(parts.name, new)
    key = task_archive_key(client.account) if kind == "task" else project_archive_key(client.account)
    for partition in new:  # the name beside the id on the asset's partitions, before any archive run
        instance.report_runless_asset_event(dg.AssetObservation(
            asset_key=key, partition=partition, metadata={f"{kind}_name": found[partition]}))
    return new
