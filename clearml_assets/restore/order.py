"""The order tasks are restored in: a task after those it waits for that the same archive holds (its parent task,
the dataset versions a dataset version builds on, and for a report every other task, which it links to)."""

from __future__ import annotations

from . import system_tasks
from .reader import TaskArchive


def parents(archives: list[TaskArchive]) -> dict[str, list[str]]:
    """The source ids each archive's task waits for when they are in ``archives``: its parent task, the dataset
    versions it builds on (a dataset version), every other task (a report, which links to them)."""
    by_id = {a.source_task_id: a for a in archives}
    others = [a.source_task_id for a in archives if not system_tasks.is_report(a.task)]
    out = {}
    for archive in archives:
        key = archive.source_task_id
        waits = others if system_tasks.is_report(archive.task) else \
            [archive.task.get("parent"), *system_tasks.dataset_parents(archive)]
        out[key] = [p for p in dict.fromkeys(waits) if p in by_id and p != key]
    return out


def levels(archives: list[TaskArchive], waits_for: dict[str, list[str]] | None = None) -> list[list[TaskArchive]]:
    """The archives in levels: each task after the levels holding those it waits for (see :func:`parents`)."""
    by_id = {a.source_task_id: a for a in archives}
    waits_for = parents(archives) if waits_for is None else waits_for
    depth: dict[str, int] = {}

    def level(archive: TaskArchive, seen: frozenset = frozenset()) -> int:
        key = archive.source_task_id
        if key not in depth:
            waits = [p for p in waits_for[key] if p not in seen]
            depth[key] = max((level(by_id[p], seen | {key}) + 1 for p in waits), default=0)
        return depth[key]

    out: dict[int, list[TaskArchive]] = {}
    for archive in parents_first(archives, waits_for):
        out.setdefault(level(archive), []).append(archive)
    return [out[k] for k in sorted(out)]


def parents_first(archives: list[TaskArchive], waits_for: dict[str, list[str]] | None = None) -> list[TaskArchive]:
    """The archives, each after those it waits for (a cycle is cut, never followed forever)."""
    by_id = {a.source_task_id: a for a in archives}
    waits_for = parents(archives) if waits_for is None else waits_for
    ordered: list[TaskArchive] = []
    seen: set[str] = set()

    def visit(archive: TaskArchive, depth: int = 0) -> None:
        if archive.source_task_id in seen or depth > len(archives):
            return
        for parent in waits_for[archive.source_task_id]:
            visit(by_id[parent], depth + 1)
        seen.add(archive.source_task_id)
        ordered.append(archive)

    for archive in archives:
        visit(archive)
    return ordered
