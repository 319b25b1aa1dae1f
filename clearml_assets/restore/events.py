"""The events of a copy: every scalar, log line, plot and debug image event of the archive sent in bounded
batches, image URLs pointing at the uploaded copies, the source's last batch sent last (its ``metric_stats``)."""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Callable, Iterable, Iterator

from ..archives.logs import ConsoleText
from .copies import CopyWrite, RestoreError


def batches(events: Iterable[dict], max_events: int, max_bytes: int) -> Iterator[list[dict]]:
    """``events`` in batches of at most ``max_events`` events and (about) ``max_bytes`` bytes."""
    batch: list[dict] = []
    size = 0
    for event in events:
        weight = 200 + len(event.get("plot_str") or "") + len(event.get("msg") or "")
        if batch and (len(batch) >= max_events or size + weight > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += weight
    if batch:
        yield batch


def send_events(write: CopyWrite, urls: dict[str, Future]) -> Callable[[], None]:
    """Every event of the archive, ``per_task`` batches in flight; then, alone in the last batch, the latest event
    of each metric (and type) the source's own last batch held: the server replaces a task's ``metric_stats`` with
    the metrics of each batch (``TaskBLL.update_statistics``), so the copy ends with the same ``metric_stats`` as
    the source. Every event is still sent exactly once.

    Args:
        write: The copy being written.
        urls: ``{old image URL: future new URL}`` of the images being uploaded.

    Returns:
        A function that waits for that last batch and raises :class:`RestoreError` unless the server took
        every event (the caller records the artifacts meanwhile)."""
    last_batch = _last_batch_metrics(write.archive.task)
    held: dict[tuple[str, str], dict] = {}
    in_flight: list[tuple[int, Future]] = []
    sent = added = 0
    for batch in batches(_held_back(_all_events(write, urls), last_batch, held), write.batch_events,
                         write.batch_bytes):
        in_flight.append((len(batch), write.pool.submit(write.client.events.add_batch, batch)))
        if len(in_flight) >= write.per_task:
            size, future = in_flight.pop(0)
            sent, added = sent + size, added + int(future.result().get("added", size))
    for size, future in in_flight:
        sent, added = sent + size, added + int(future.result().get("added", size))
    final = [held[key] for key in last_batch if key in held]  # the source's order: the same metric_stats
    tail = [(len(batch), write.pool.submit(write.client.events.add_batch, batch))  # after every other batch landed
            for batch in batches(final, max(write.batch_events, len(final)), max(write.batch_bytes, 1 << 30))]

    def settle() -> None:
        total, taken = sent + sum(n for n, _ in tail), added + sum(int(f.result().get("added", n)) for n, f in tail)
        if taken != total:  # never a silent truncation: the server must have taken every event
            raise RestoreError(f"the server added {taken} of the {total} events sent for task {write.task_id}")

    return settle


def _held_back(events: Iterable[dict], last_batch: dict[tuple[str, str], None],
               held: dict[tuple[str, str], dict]) -> Iterator[dict]:
    """``events`` but the latest of each ``(metric, type)`` of ``last_batch``, which stays in ``held``."""
    for event in events:
        key = (str(event.get("metric") or ""), str(event.get("type") or "").replace(" ", "_"))
        if key in last_batch:
            previous = held.get(key)
            if previous is None or _event_order(event) >= _event_order(previous):
                held[key] = event
                if previous is None:
                    continue
                event = previous
        yield event


def _all_events(write: CopyWrite, urls: dict[str, Future]) -> Iterator[dict]:
    """The archive's events addressed to the copy, image URLs replaced by the uploaded copies', counted."""
    archive, result = write.archive, write.result
    kinds = (("scalar_points", archive.scalar_events()), ("log_events", archive.log_events()),
             ("plots", (_relinked(e, [u for u, _ in files], urls) for e, files in archive.plot_events())),
             ("debug_image_events", (e for e, _ in archive.debug_image_events())))
    with open(os.devnull, "wb") as sink:
        console = ConsoleText(sink)  # log lines counted as the archive counts them (an event may hold many)
        for name, events in kinds:
            result.counts.setdefault(name, 0)
            for event in events:
                if name == "debug_image_events" and event.get("url") in urls:
                    event["url"] = urls[event["url"]].result()
                elif name == "log_events":
                    console.add(str(event.get("msg") or ""))
                event["task"] = write.task_id
                result.counts[name] += 1
                yield event
        console.close()
    result.counts["log_lines"] = console.lines


def _relinked(event: dict, old_urls: list[str], urls: dict[str, Future]) -> dict:
    """A plot event whose image URLs (in ``plot_str`` and ``source_urls``) point at the uploaded copies."""
    for old in old_urls:
        if old not in urls:
            continue
        new = urls[old].result()
        if isinstance(event.get("plot_str"), str):
            event["plot_str"] = event["plot_str"].replace(old, new)
        if isinstance(event.get("source_urls"), list):
            event["source_urls"] = [new if u == old else u for u in event["source_urls"]]
    return event


def _last_batch_metrics(task: dict) -> dict[tuple[str, str], None]:
    """``(metric, event type)`` of the source task's ``metric_stats`` (the metrics of its last event batch),
    in their order."""
    out: dict[tuple[str, str], None] = {}
    stats = task.get("metric_stats")
    for item in (stats.values() if isinstance(stats, dict) else []):
        if not isinstance(item, dict) or not item.get("metric"):
            continue
        for etype in item.get("event_stats_by_type") or {}:
            out[(str(item["metric"]), str(etype))] = None
    return out


def _event_order(event: dict) -> tuple[int, int]:
    try:
        return int(event.get("iter") or 0), int(event.get("timestamp") or 0)
    except (TypeError, ValueError):
        return 0, 0
