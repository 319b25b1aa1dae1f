"""Paging ``events.get_task_events`` so that a real clearml-server loses nothing and repeats nothing.

The real server pages by iteration: each page holds whole iterations, and the scroll id remembers the
last iteration sent. When a page ends at iteration 0 the remembered value is falsy and the next page
starts again from the beginning (``if from_key_value:`` in ``events_iterator``), so a client that trusts
the scroll receives the first page twice and never sees the later iterations. Here a page of nothing
new (by iteration, and by content within the last iteration received) means the scroll restarted, and the
rest is then read newest-first (``order: desc``) down to what was already received. The restart and the
recovery are recorded.

Plots over 100,000 characters come back compressed (``plot_data``: base64 of zlib, no ``plot_str``);
:func:`decode_plot` restores ``plot_str`` so an archive always holds the plot itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import orjson

from ..errors import ClearMLRequestError
from .bounds import inflate_plot_data

EVENTS_BATCH = 500
# the real server's own pattern for image URLs inside a plot (EventBLL.img_source_regex)
_IMG_SOURCE = re.compile(r"['\"]source['\"]:\s?['\"]([a-z][a-z0-9+\-.]*://.*?)['\"]", re.IGNORECASE)


@dataclass
class PagingReport:
    """What paging met: the server's total, events received, restarts survived."""

    total: int | None = None
    received: int = 0
    duplicates: int = 0
    restarts: int = 0
    issues: list[dict[str, Any]] = field(default_factory=list)


def event_key(event: dict) -> bytes:
    """A content key of an event (equal events from a restarted scroll have equal keys)."""
    try:
        raw = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raw = json.dumps(event, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).digest()


def decode_plot(event: dict) -> dict:
    """``event`` with ``plot_str`` restored from a compressed ``plot_data`` (base64 of zlib), inflated as a
    stream bounded by :func:`.bounds.max_plot_bytes` (:class:`.bounds.InflateError` past it)."""
    data = event.get("plot_data")
    if data and event.get("plot_str") is None:
        event = dict(event)
        event["plot_str"] = inflate_plot_data(data)
        event.pop("plot_data", None)
    return event


def plot_image_urls(event: dict) -> list[str]:
    """Image URLs a plot references (``source_urls`` the server extracted, or found in ``plot_str``)."""
    urls = list(event.get("source_urls") or [])
    text = event.get("plot_str")
    if isinstance(text, str):
        urls.extend(_IMG_SOURCE.findall(text))
    return sorted(set(u for u in urls if isinstance(u, str)))


class _Seen:
    """Which events were received, in memory bounded by one iteration.

    Pages hold whole iterations in key order, so an event before the last iteration received is a repeat,
    one after it is new, and only events of that last iteration need their content compared.
    """

    def __init__(self, descending: bool = False):
        self.sign = -1 if descending else 1
        self.last: int | None = None
        self.tail: set[bytes] = set()

    def is_new(self, event: dict) -> bool:
        it = self.sign * _iteration(event)
        if self.last is None or it > self.last:
            return True
        return it == self.last and event_key(event) not in self.tail

    def all_new(self, events: list[dict]) -> bool:
        """Whether every event lies past the last iteration received (the usual page: no per-event check)."""
        if self.last is None:
            return True
        return bool(events) and min(self.sign * _iteration(e) for e in events) > self.last

    def close_page(self, accepted: list[dict]) -> None:
        """Remember the page's last iteration and the content of its events there."""
        if not accepted:
            return
        last = self.sign * _iteration(accepted[-1])
        if self.last is None or last > self.last:
            self.last, self.tail = last, set()
        self.tail.update(event_key(e) for e in accepted if self.sign * _iteration(e) == last)


def _iteration(event: dict) -> int:
    try:
        return int(event.get("iter") or 0)
    except (TypeError, ValueError):
        return 0


def iter_task_events(client, task_id: str, event_type: str | None, report: PagingReport, *,
                     batch_size: int = EVENTS_BATCH, model_events: bool = False,
                     metrics: list[dict] | None = None) -> Iterator[list[dict]]:
    """Yield pages of every event of ``event_type`` (``None``: all types), oldest iteration first.

    Repeats are dropped; a scroll restart is survived by reading the rest newest-first; ``report`` gets
    the server's total and what happened.
    """
    seen = _Seen()
    scroll_id = None
    request = {"batch_size": batch_size, "model_events": model_events, "metrics": metrics}
    while True:
        data = _page(client, task_id, event_type, request, scroll_id=scroll_id)
        if report.total is None and data.get("total") is not None:
            report.total = int(data["total"])
        events = data.get("events") or []
        fresh = _accept(events, seen, report)
        if events and not fresh:
            report.restarts += 1
            break
        if fresh:
            yield fresh
        scroll_id = data.get("scroll_id")
        if not events or not scroll_id or _all_received(report):
            return
    recovered = list(_newest_first(client, task_id, event_type, request, seen, report))
    if recovered:
        yield recovered[::-1]
    report.issues.append({"section": event_type or "model_events", "warning":
                          "the server restarted the event scroll (a page ended at iteration 0, a "
                          f"clearml-server quirk); {len(recovered)} later events were read newest-first, "
                          f"{report.duplicates} repeated events dropped"})


def _page(client, task_id: str, event_type: str | None, request: dict, **extra: Any) -> dict:
    """One page of the task's events, checked to answer the question asked: an event of another task, type or
    metric (a server answering another query) is an error, so the section is recorded as lacking."""
    data = client.events.task_events_page(task_id, event_type, **extra, **request)
    wanted = {m.get("metric") for m in request.get("metrics") or []}
    for event in data.get("events") or []:
        if event.get("task") not in (None, task_id) or (event_type and event.get("type") not in (None, event_type)) \
                or (wanted and event.get("metric") not in wanted):
            raise ClearMLRequestError(
                f"ClearML account {client.account!r}: events.get_task_events to {client.session.api_host} for task "
                f"{task_id} ({event_type or 'every type'}) answered an event of another query (task "
                f"{event.get('task')!r}, type {event.get('type')!r}, metric {str(event.get('metric'))[:100]!r}): "
                "nothing of it is kept")
    return data


def _accept(events: list[dict], seen: _Seen, report: PagingReport, floor: _Seen | None = None) -> list[dict]:
    if floor is None and seen.all_new(events):
        fresh = events
    else:
        fresh = [e for e in events if seen.is_new(e) and (floor is None or floor.is_new(e))]
    report.duplicates += len(events) - len(fresh)
    report.received += len(fresh)
    seen.close_page(fresh)
    return fresh


def _all_received(report: PagingReport) -> bool:
    return report.total is not None and report.received >= report.total


def _newest_first(client, task_id: str, event_type: str | None, request: dict, floor: _Seen,
                  report: PagingReport) -> Iterator[dict]:
    seen = _Seen(descending=True)
    scroll_id = None
    while not _all_received(report):
        data = _page(client, task_id, event_type, request, order="desc", scroll_id=scroll_id)
        events = data.get("events") or []
        fresh = _accept(events, seen, report, floor)
        yield from fresh
        scroll_id = data.get("scroll_id")
        if not events or not fresh or not scroll_id:
            return


def count_issue(section: str, received: int, total: int | None) -> dict[str, Any] | None:
    """An error when fewer events arrived than the server counted."""
    if total is not None and received < total:
        return {"section": section, "error": f"received {received} events, server counted {total}"}
    return None
