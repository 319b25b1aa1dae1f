"""Paging ``events.get_task_events`` so that a real clearml-server loses nothing and repeats nothing.

The real server pages by iteration: each page holds whole iterations, and the scroll id remembers the
last iteration sent. When a page ends at iteration 0 the remembered value is falsy and the next page
starts again from the beginning (``if from_key_value:`` in ``events_iterator``), so a client that trusts
the scroll receives the first page twice and never sees the later iterations. Here every event is keyed
by its content; a page of nothing new means the scroll restarted, and the rest is then read newest-first
(``order: desc``) down to what was already received. The restart and the recovery are recorded.

Plots over 100,000 characters come back compressed (``plot_data``: base64 of zlib, no ``plot_str``);
:func:`decode_plot` restores ``plot_str`` so an archive always holds the plot itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import orjson

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
    """``event`` with ``plot_str`` restored from a compressed ``plot_data`` (base64 of zlib)."""
    data = event.get("plot_data")
    if data and event.get("plot_str") is None:
        event = dict(event)
        event["plot_str"] = zlib.decompress(base64.b64decode(data)).decode("utf-8")
        event.pop("plot_data", None)
    return event


def plot_image_urls(event: dict) -> list[str]:
    """Image URLs a plot references (``source_urls`` the server extracted, or found in ``plot_str``)."""
    urls = list(event.get("source_urls") or [])
    text = event.get("plot_str")
    if isinstance(text, str):
        urls.extend(_IMG_SOURCE.findall(text))
    return sorted(set(u for u in urls if isinstance(u, str)))


def iter_task_events(client, task_id: str, event_type: str | None, report: PagingReport, *,
                     batch_size: int = EVENTS_BATCH, model_events: bool = False) -> Iterator[list[dict]]:
    """Yield pages of every event of ``event_type`` (``None``: all types), oldest iteration first.

    Duplicates are dropped; a scroll restart is survived by reading the rest newest-first; ``report``
    gets the server's total and what happened.
    """
    seen: set[bytes] = set()
    scroll_id = None
    while True:
        data = client.task_events_page(task_id, event_type, batch_size=batch_size, scroll_id=scroll_id,
                                       model_events=model_events)
        if report.total is None and data.get("total") is not None:
            report.total = int(data["total"])
        events = data.get("events") or []
        fresh = _fresh(events, seen, report)
        if events and not fresh:
            report.restarts += 1
            break
        if fresh:
            yield fresh
        scroll_id = data.get("scroll_id")
        if not events or not scroll_id or _all_received(report):
            return
    recovered = list(_newest_first(client, task_id, event_type, batch_size, model_events, seen, report))
    if recovered:
        yield recovered[::-1]
    report.issues.append({"section": event_type or "model_events", "warning":
                          "the server restarted the event scroll (a page ended at iteration 0, a "
                          f"clearml-server quirk); {len(recovered)} later events were read newest-first, "
                          f"{report.duplicates} repeated events dropped"})


def _fresh(events: list[dict], seen: set[bytes], report: PagingReport) -> list[dict]:
    fresh = []
    for event in events:
        key = event_key(event)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        fresh.append(event)
    report.received += len(fresh)
    return fresh


def _all_received(report: PagingReport) -> bool:
    return report.total is not None and report.received >= report.total


def _newest_first(client, task_id: str, event_type: str | None, batch_size: int, model_events: bool,
                  seen: set[bytes], report: PagingReport) -> Iterator[dict]:
    scroll_id = None
    while not _all_received(report):
        data = client.task_events_page(task_id, event_type, batch_size=batch_size, order="desc",
                                       scroll_id=scroll_id, model_events=model_events)
        events = data.get("events") or []
        fresh = _fresh(events, seen, report)
        yield from fresh
        scroll_id = data.get("scroll_id")
        if not events or not fresh or not scroll_id:
            return


def count_issue(section: str, received: int, total: int | None) -> dict[str, Any] | None:
    """An error when fewer events arrived than the server counted."""
    if total is not None and received < total:
        return {"section": section, "error": f"received {received} events, server counted {total}"}
    return None
