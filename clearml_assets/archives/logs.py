"""The whole console log of a task, streamed to ``console.log``.

Pages ``events.get_task_log`` from the earliest event forward (``navigate_earlier=false``,
``from_timestamp`` = the last timestamp received; the server returns every event sharing that timestamp in
the same page, so paging by timestamp loses nothing). The SDK's ``get_reported_console_output`` only
returns the tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_NAME = "console.log"
DEFAULT_BATCH = 10_000
# Elasticsearch counts hits exactly up to 10,000 (track_total_hits); the real server's get_task_log
# ``total`` is exact only below that, so only then does it end the paging and stand for the count.
EXACT_TOTAL_BELOW = 10_000


@dataclass
class LogResult:
    """Lines written, the server's count, and problems met."""

    lines: int = 0
    server_total: int = 0
    bytes: int = 0
    replaced_lines: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def count_log_events(client, task_id: str) -> int | None:
    """The exact number of log events (``events.get_task_events`` counts them; ``None`` if unsupported)."""
    try:
        data = client.call("events.get_task_events", task=task_id, event_type="log", batch_size=1)
    except Exception:  # noqa: BLE001 - the count is a cross-check; the log itself is what matters
        return None
    total = data.get("total")
    return int(total) if total is not None else None


def _complete(lines: int, total: int) -> bool:
    """Whether ``lines`` received are every log event by the server's own exact count."""
    return 0 < total < EXACT_TOTAL_BELOW and lines == total


def _line(msg: Any) -> str:
    text = msg if isinstance(msg, str) else ("" if msg is None else str(msg))
    return text if text.endswith("\n") else text + "\n"


def export_console_log(client, task_id: str, folder: Path, batch_size: int = DEFAULT_BATCH) -> LogResult:
    """Write every log event's ``msg`` of ``task_id`` to ``folder/console.log`` (UTF-8, in time order).

    Text the server holds that is not valid UTF-8 (lone surrogates from escaped bytes) is written with
    backslash escapes and counted in ``replaced_lines``.
    """
    result = LogResult()
    from_timestamp = None
    max_total = 0
    with open(folder / LOG_NAME, "wb") as out:
        while True:
            request: dict[str, Any] = {"task": task_id, "batch_size": batch_size, "navigate_earlier": False,
                                       "order": "asc"}
            if from_timestamp is not None:
                request["from_timestamp"] = from_timestamp
            data = client.call("events.get_task_log", **request)
            events = data.get("events") or []
            if data.get("total") is not None:
                max_total = max(max_total, int(data["total"]))
            if not events:
                break
            chunks = []
            for event in events:
                text = _line(event.get("msg"))
                try:
                    chunks.append(text.encode("utf-8"))
                except UnicodeEncodeError:
                    chunks.append(text.encode("utf-8", "backslashreplace"))
                    result.replaced_lines += 1
            blob = b"".join(chunks)
            out.write(blob)
            result.bytes += len(blob)
            result.lines += len(events)
            last = events[-1].get("timestamp")
            if last is None or last == from_timestamp or _complete(result.lines, max_total):
                break
            from_timestamp = last
    exact = max_total if _complete(result.lines, max_total) else count_log_events(client, task_id)
    result.server_total = exact if exact is not None else max_total
    if result.lines < result.server_total:
        result.errors.append({"section": "console", "error": f"received {result.lines} log events, "
                                                             f"server counted {result.server_total}"})
    if result.replaced_lines:
        result.errors.append({"section": "console", "warning": f"{result.replaced_lines} log events held "
                                                               "text that is not valid UTF-8; written "
                                                               "with backslash escapes"})
    return result
