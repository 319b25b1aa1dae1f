"""ClearML's hidden system projects in archives and restores: pipelines, datasets and reports stay what they are.

ClearML keeps a pipeline's runs in ``<project>/.pipelines/<pipeline>`` (system tags ``hidden`` and ``pipeline``), a
dataset's versions in ``<project>/.datasets/<dataset>`` (``hidden``, ``dataset``) and a project's reports in
``<project>/.reports`` (``hidden``, ``reports``); the ``.pipelines`` and ``.datasets`` folders themselves are
``hidden``. The web app shows them on its Pipelines, Datasets and Reports pages and never among the projects.

An export records the project of each task with its ancestors and their system tags (``task.json``'s
``project.chain``); a restore creates the missing projects of that chain with those tags (and adds the tags to a
project of the name that lacks them, as the SDK does), so a restored pipeline run, dataset version or report is
one again. Archives written before the chain was recorded get it from the names (the conventions above).
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

SYSTEM_TAGS = ("hidden", "pipeline", "dataset", "reports")
"""The system tags that make a project a system project (others, e.g. ``archived``, are the project's state)."""
FOLDERS = {".pipelines": ("hidden",), ".datasets": ("hidden",), ".reports": ("hidden", "reports")}
"""What a folder of system projects is tagged by its name; the projects right under ``.pipelines`` and
``.datasets`` are tagged ``hidden`` plus ``pipeline`` / ``dataset``."""
MEMBERS = {".pipelines": ("hidden", "pipeline"), ".datasets": ("hidden", "dataset")}


def prefixes(name: str) -> list[str]:
    """A project's full name and its ancestors' (``a/b/c`` -> ``a``, ``a/b``, ``a/b/c``)."""
    parts = [p for p in str(name).split("/") if p]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def inferred_chain(name: str) -> list[dict[str, Any]]:
    """The chain of a project name from ClearML's conventions alone (archives that did not record it)."""
    chain = []
    parts = [p for p in str(name).split("/") if p]
    for i, part in enumerate(parts):
        tags: tuple[str, ...] = FOLDERS.get(part, ())
        if i and parts[i - 1] in MEMBERS:
            tags = MEMBERS[parts[i - 1]]
        chain.append({"name": "/".join(parts[:i + 1]), "system_tags": sorted(tags)})
    return chain


def system_subprojects(client, name: str) -> list[str]:
    """The ids of the system projects of project ``name``: its pipelines' runs, its datasets' versions and its
    reports (``<name>/.pipelines/...``, ``<name>/.datasets/...``, ``<name>/.reports``)."""
    if not name:
        return []
    return [p.id for p in client.projects.find_many([f"{name}/{folder}" for folder in FOLDERS],
                                                    include_subprojects=True, search_hidden=True)]


class ProjectChains:
    """The recorded chains of an account's projects, each read once (one ``projects.get_all`` per project).

    Args:
        client: The account's client.
    """

    def __init__(self, client):
        self.client = client
        self._chains: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def chain(self, name: str) -> list[dict[str, Any]]:
        """``[{"name", "system_tags"}]`` of the project ``name`` and its ancestors, root first (system tags only)."""
        if not name:
            return []
        with self._lock:
            if name in self._chains:
                return self._chains[name]
        found = {p.name: p for p in self.client.projects.find_many(
            prefixes(name), search_hidden=True, only_fields=("id", "name", "system_tags"))}
        chain = []
        for level in inferred_chain(name):  # what the server says wins over the names' conventions
            project = found.get(level["name"])
            if project is not None:
                level = {**level, "system_tags": sorted(set(project.system_tags) & set(SYSTEM_TAGS))}
            chain.append(level)
        with self._lock:
            return self._chains.setdefault(name, chain)


def recorded_chain(info: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The chain ``task.json`` recorded for the project ``name``, or the one its name implies (older archives)."""
    chain = (info.get("project") or {}).get("chain")
    if isinstance(chain, list) and chain and all(isinstance(level, dict) for level in chain) \
            and chain[-1].get("name") == name:
        return [{"name": str(level.get("name")), "system_tags": sorted(
            str(t) for t in level.get("system_tags") or () if t in SYSTEM_TAGS)} for level in chain]
    return inferred_chain(name)


def rebased(chain: Sequence[dict[str, Any]], project: str) -> list[dict[str, Any]]:
    """``chain`` moved under ``project`` (a restore's ``--project``): its system part stays what it is.

    ``work/.pipelines/train flow`` restored into ``archive`` is ``archive/.pipelines/train flow`` (tagged as
    before); a task of a regular project goes to ``project`` itself.
    """
    names = [str(level["name"]).rsplit("/", 1)[-1] for level in chain]
    system = next((i for i, part in enumerate(names) if part in FOLDERS), None)
    base = inferred_chain(project)
    if system is None:
        return base
    root = project.strip("/")
    return base + [{"name": "/".join([root, *names[system:i + 1]]), "system_tags": list(level["system_tags"])}
                   for i, level in enumerate(chain) if i >= system]


def ensure_chain(client, chain: Sequence[dict[str, Any]]) -> str:
    """The id of the last project of ``chain``, each project of it created with its system tags (or given the
    ones it lacks, as the SDK does with a project of that name).

    Args:
        client: The target account's client.
        chain: ``[{"name", "system_tags"}]``, root first.
    """
    names = [str(level["name"]) for level in chain]
    found = {p.name: p for p in client.projects.find_many(
        names, search_hidden=True, only_fields=("id", "name", "system_tags"))}
    project_id = ""
    for level in chain:
        tags = list(level.get("system_tags") or ())
        project = found.get(level["name"])
        if project is None:
            project_id = client.projects.ensure(level["name"], system_tags=tags)
        else:
            project_id = project.id
            if not set(tags) <= set(project.system_tags):
                client.projects.update(project_id, system_tags=sorted({*project.system_tags, *tags}))
    return project_id
