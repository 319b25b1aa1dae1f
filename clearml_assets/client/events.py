"""``client.events``: a task's log, its events by iteration (scroll), scalar names, and reporting events.

The event readers are paged by the caller (the exporter keeps its own state between pages), so the guards
against a misbehaving server live here, per page: a log page must come after the ``from_timestamp`` asked
for, and an event scroll is followed by its scroll id (a page seen before, more events than the server
counted, or more pages than any task has, end it with an error).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Sequence

import orjson

from ..errors import ClearMLRequestError
from .paging import EXACT_TOTAL_BELOW, PageGuard, ScrollGuards
from .session import ClearMLSession, ServiceClient

#: ``events.add_batch`` may take this long (a large batch is written by the server before it answers).
ADD_BATCH_DEADLINE_SEC = 300.0
#: The most pages one event scroll may take (at 500 events a page: 10 million events of one kind of a task);
#: the bound for a server whose total says "10,000 or more" or nothing.
DEFAULT_MAX_SCROLL_PAGES = 20_000


class EventsClient(ServiceClient):
    """Events of one account's tasks and models.

    Args:
        session: The account's session.
        max_scroll_pages: The most pages one event scroll may take.
    """

    def __init__(self, session: ClearMLSession, max_scroll_pages: int = DEFAULT_MAX_SCROLL_PAGES):
        super().__init__(session)
        self.max_scroll_pages = max_scroll_pages
        self.add_batch_deadline_seconds = ADD_BATCH_DEADLINE_SEC
        self._scrolls = ScrollGuards()
        self._lock = threading.Lock()

    def task_log_page(self, task_id: str, *, batch_size: int = 5000, from_timestamp: int | None = None) -> dict:
        """One page of ``events.get_task_log``, oldest first after ``from_timestamp`` (ms): ``events`` and
        ``total`` (a real server's total is capped at 10,000).

        Raises:
            ClearMLRequestError: The page holds events from before ``from_timestamp`` (the server ignores
                it: paging would never end) or events of another task.
        """
        request: dict[str, Any] = {"task": task_id, "batch_size": batch_size, "navigate_earlier": False,
                                   "order": "asc"}
        if from_timestamp is not None:
            request["from_timestamp"] = from_timestamp
        data = self._session.call("events.get_task_log", **request)
        foreign = [e.get("task") for e in data.get("events") or [] if isinstance(e, dict)
                   and e.get("task") not in (None, task_id)]
        if foreign:  # a server answering another query (a replayed answer): its lines are not this task's
            raise self._paging_error("events.get_task_log", f"answered log events of task {str(foreign[0])[:64]!r} "
                                     f"when asked for task {task_id}")
        if from_timestamp:
            stale = [e for e in data.get("events") or [] if isinstance(e, dict)
                     and isinstance(e.get("timestamp"), int) and e["timestamp"] < from_timestamp]
            if stale:
                raise self._paging_error("events.get_task_log", f"answered {len(stale)} log events from before the "
                                         f"from_timestamp {from_timestamp} it was asked for")
        return data

    def task_events_page(self, task_id: str, event_type: str | None, *, batch_size: int, order: str = "asc",
                         scroll_id: str | None = None, model_events: bool = False,
                         metrics: list[dict] | None = None) -> dict:
        """One page of ``events.get_task_events`` (by iteration; ``events``, ``total``, ``scroll_id``).

        Raises:
            ClearMLRequestError: The scroll does not advance (a page seen before, again, after the one restart
                a real server may make), brings more events than the server counted, or never ends.
        """
        request: dict[str, Any] = {"task": task_id, "batch_size": batch_size, "order": order}
        if event_type:  # omitted: every type (the real server's "*", the local server's "all")
            request["event_type"] = event_type
        if model_events:
            request["model_events"] = True
        if metrics:
            request["metrics"] = metrics
        if scroll_id:
            request["scroll_id"] = scroll_id
        with self._lock:
            guard = self._scrolls.take(scroll_id)
        data = self._session.call("events.get_task_events", **request)
        events = data.get("events") or []
        if events:
            self._follow(guard, events, data.get("total"), batch_size)
            with self._lock:
                self._scrolls.keep(data.get("scroll_id"), guard)
        return data

    def _follow(self, guard: PageGuard, events: list, total: Any, batch_size: int) -> None:
        if guard.pages == 0 and isinstance(total, int):
            guard.total = total
        earlier = guard.check(events)
        if earlier is not None:
            raise self._paging_error("events.get_task_events", f"answered scroll page {guard.pages - 1} with the "
                                     f"same events as page {earlier}: the scroll id does not advance")
        counted = guard.total
        if counted is not None and counted < EXACT_TOTAL_BELOW and guard.rows > counted + max(batch_size, counted):
            raise self._paging_error("events.get_task_events", f"kept scrolling past the {counted} events it "
                                     f"counted ({guard.rows} received): the scroll never ends")
        if guard.pages > self.max_scroll_pages:
            raise self._paging_error("events.get_task_events", f"kept scrolling for {guard.pages} pages: the "
                                     "scroll never ends")

    def _paging_error(self, call: str, what: str) -> ClearMLRequestError:
        session = self._session
        return ClearMLRequestError(
            f"ClearML account '{session.account}': {call} to {session.api_host} {what}; the server does not "
            "page correctly, so not every event can be read. Nothing partial was kept.",
            metadata={"endpoint": call})

    def scalar_metrics_and_variants(self, task_id: str, model_events: bool = False) -> dict:
        """``{metric: {variant: ...}}`` of the task's (or model's) scalars."""
        fields: dict[str, Any] = {"model_events": True} if model_events else {}
        return self._session.call("events.get_scalar_metrics_and_variants", task=task_id,
                                  **fields).get("metrics") or {}

    def add_batch(self, events: Sequence[Mapping[str, Any]]) -> dict:
        """Report events (``events.add_batch``, JSON lines as the SDK sends them, in one request: the caller
        bounds its size). Never sent twice: a repeated batch would duplicate its events.

        Returns:
            The answer (``added``, ``errors``).

        Raises:
            ClearMLRequestError: The server refused the batch or some of its events (its message names them).
        """
        body = b"\n".join(orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY) for e in events)
        session = self._session
        data = session.send("events.add_batch", None, lines=body,
                            deadline=session.deadline(max(session.deadline_seconds, self.add_batch_deadline_seconds)))
        if data.get("errors"):
            raise ClearMLRequestError(
                f"ClearML account '{session.account}': events.add_batch refused {data['errors']} of "
                f"{len(events)} events: {data.get('errors_info') or 'no reason given'}",
                metadata={"endpoint": "events.add_batch", "errors": data["errors"]})
        return data

    def add_log(self, task_id: str, text: str, *, worker: str = "", level: str = "info",
                timestamp_ms: int | None = None) -> None:
        """Report one console log line of a task (as an agent does for a script's output)."""
        self.add_batch([{"type": "log", "task": task_id, "level": level, "worker": worker, "msg": text,
                         "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms}])
