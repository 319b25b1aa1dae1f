"""Bounded polling of ClearML for tasks whose status became completed or published."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..client import MAX_PAGE_SIZE, ClearMLClient
from ..timestamps import parse_clearml_time
from ..types import Task
from .cursor import ClearMLTaskCursor

if TYPE_CHECKING:
    from ..resource import ClearMLResource

FINISHED_STATUSES = ("completed", "published")
TASK_FIELDS = ("id", "name", "project", "status", "status_changed")
_OBJECT_ID_CHARS = frozenset("0123456789abcdef")


@dataclass
class ClearMLPollResult:
    """What one bounded poll found.

    Attributes:
        tasks: New tasks (``id``, ``name``, ``project``, ``status``, ``status_changed`` read), oldest first.
        cursor: The cursor after them (safe to store: every task before it was returned).
        pages: ``tasks.get_all`` calls made.
        more: True when the poll stopped at a bound with results possibly left for the next tick.
        stop_reason: Why it stopped (``caught_up``, ``max_pages``, ``max_tasks``, ``time_budget``).
    """

    tasks: list[Task] = field(default_factory=list)
    cursor: ClearMLTaskCursor = field(default_factory=ClearMLTaskCursor)
    pages: int = 0
    more: bool = False
    stop_reason: str = "caught_up"


def account_host(clearml: "ClearMLResource", account: str) -> str:
    """The API host of ``account`` for messages, without connecting (the embedded server is named)."""
    acc = getattr(clearml, "accounts", {}).get(account)
    if acc is None:
        return "an unconfigured account"
    return "the embedded local server" if acc.embedded else (acc.api_host or "no api_host")


def resolve_project_ids(client: ClearMLClient, projects: Sequence[str], include_subprojects: bool = True
                        ) -> list[str]:
    """Project ids of ``projects`` (ids are kept, names are looked up in one paged query).

    Args:
        client: The account's client.
        projects: Project ids (32 hex digits) or full project names (``parent/child``).
        include_subprojects: Also return the ids of every subproject of a named project (its hidden system
            projects too: its pipelines' runs, datasets' versions and reports).
    """
    ids = [p for p in projects if _is_object_id(p)]
    names = [p for p in projects if not _is_object_id(p)]
    ids += [p.id for p in client.projects.find_many(names, include_subprojects=include_subprojects,
                                                    search_hidden=True)]
    return sorted(set(ids))


def _is_object_id(value: str) -> bool:
    return len(value) == 32 and set(value) <= _OBJECT_ID_CHARS


def poll_finished_tasks(
    client: ClearMLClient,
    cursor: ClearMLTaskCursor,
    *,
    project_ids: Sequence[str] | None = None,
    statuses: Sequence[str] = FINISHED_STATUSES,
    include_hidden: bool = False,
    page_size: int = 500,
    max_pages: int = 20,
    max_tasks: int = 1000,
    time_budget_seconds: float = 20.0,
    overlap_seconds: float = 5.0,
    request_timeout_seconds: float = 30.0,
) -> ClearMLPollResult:
    """Tasks whose status changed to one of ``statuses`` after ``cursor``, in bounded pages.

    Pages are keyset pages: each query asks for ``status_changed >= <newest time seen>`` ordered by
    ``status_changed, id``, so tasks that change while the poll runs cannot shift rows out of a page. A page
    shorter than asked that brings nothing new ends the poll (an idle tick makes one call), unless the
    server was seen to cut pages that short (the cursor's ``cap``); otherwise only an empty page ends it.

    Args:
        client: The account's client.
        cursor: Where the previous poll stopped (not modified; the result holds the new one).
        project_ids: Only these projects (None: all projects). An empty list finds nothing.
        statuses: Task statuses that count as finished.
        include_hidden: Also return hidden tasks (e.g. dataset tasks); reports (hidden tasks that are the
            web app's Reports) are returned either way.
        page_size: Rows per ``tasks.get_all`` call (at most 500, the real server's cap).
        max_pages: Most calls that find new tasks per poll (calls re-reading known tasks are bounded
            by the time budget only, so a tick always makes progress).
        max_tasks: Most new tasks per poll.
        time_budget_seconds: No new page is requested after this many seconds.
        overlap_seconds: How far before the cursor's time each poll looks again (late commits).
        request_timeout_seconds: Most one call may take (the account's ``request_deadline_seconds`` if less).

    Raises:
        ClearMLConnectionError: The server could not be reached or refused the keys.
        ClearMLRequestError: The server rejected the query.
    """
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    state = ClearMLTaskCursor(time=cursor.time, recent=dict(cursor.recent), cap=cursor.cap)
    result = ClearMLPollResult(cursor=state)
    if project_ids is not None and not project_ids:
        return result
    deadline = time.monotonic() + time_budget_seconds
    bound = state.lower_bound(overlap_seconds, max_seen=max(1, page_size // 2))
    page = 0
    counted = 0  # pages that found something new: re-reading known tasks must not stall progress
    short: int | None = None  # length of the previous page if it was shorter than asked and brought new tasks
    while True:
        if counted >= max_pages or (result.pages and time.monotonic() >= deadline):
            result.more, result.stop_reason = True, "max_pages" if counted >= max_pages else "time_budget"
            break
        query = _tasks_query(statuses, bound, project_ids, include_hidden)
        rows = client.tasks.page(page, page_size, **query,
                                 read_timeout=min(request_timeout_seconds, client.session.deadline_seconds))
        result.pages += 1
        new = _take_new_tasks(rows, result, max_tasks)
        counted += 1 if new else 0
        if new and short is not None:  # new tasks past a short page: the server cuts pages that short
            state.cap = max(state.cap or 0, short)
        is_short = len(rows) < page_size
        short = len(rows) if is_short and new else None
        idle_end = is_short and not new and (state.cap is None or len(rows) < state.cap)
        if result.more or not rows or idle_end:
            break
        bound, page = _next_page(rows, bound, page)
    state.prune(overlap_seconds)
    return result


def _tasks_query(statuses: Sequence[str], bound: str | None, project_ids: Sequence[str] | None,
                 include_hidden: bool) -> dict[str, Any]:
    """The ``tasks.get_all`` filter of one keyset page: ``status_changed >= bound``, oldest first."""
    query: dict[str, Any] = {"status": list(statuses), "order_by": ["status_changed", "id"],
                             "only_fields": list(TASK_FIELDS)}
    if bound is not None:
        query["status_changed"] = [f">={bound}"]
    if project_ids is not None:
        query["project"] = list(project_ids)
    query["search_hidden"] = True
    if not include_hidden:  # what is not hidden, or is a report (clearml-server's list operators)
        query["system_tags"] = ["__$any", "__$not", "hidden", "reports"]
    return query


def _take_new_tasks(rows: Sequence[Task], result: ClearMLPollResult, max_tasks: int) -> bool:
    """Append the rows the cursor has not seen to ``result`` (advancing its cursor), up to ``max_tasks``.

    Returns:
        Whether any row was new.
    """
    found = len(result.tasks)
    for row in rows:
        changed = row.status_changed
        if not changed or row.public or not result.cursor.is_new(row.id, changed):
            continue  # a public row (ClearML's examples, company "") is not the account's task
        if len(result.tasks) >= max_tasks:
            result.more, result.stop_reason = True, "max_tasks"
            break
        result.tasks.append(row)
        result.cursor.advance(row.id, changed)
    return len(result.tasks) > found


def _next_page(rows: Sequence[Task], bound: str | None, page: int) -> tuple[str | None, int]:
    """The keyset bound and page offset after ``rows`` (a non-empty page)."""
    last = rows[-1].status_changed
    if last and (bound is None or _after(last, bound)):
        return str(last), 0
    return bound, page + 1  # a whole page shares one timestamp: step through it by offset


def _after(a: str, b: str) -> bool:
    ta, tb = parse_clearml_time(a), parse_clearml_time(b)
    return ta is not None and tb is not None and ta > tb
