"""The whole console log of a task: as the ClearML UI shows it, structured, and raw.

Pages ``events.get_task_log`` from the earliest event forward (``from_timestamp`` = the last timestamp
received; the server returns every event sharing that timestamp in the same page, so paging by timestamp
loses nothing) until a page comes back empty. Log events carry no ``iter``; asking
``events.get_task_events`` for them fails on a real server, so the log's own ``total`` is the count. That
total is exact only below 10,000 (Elasticsearch's ``track_total_hits``): above it the paging to an empty page
is what proves completeness, and the manifest says the server's count was capped.

Three files:

- ``console.txt``: what the ClearML UI shows: ANSI escapes stripped, a carriage-return progress line
  collapsed to its final state (also across events: an event starting with ``\\r`` replaces the line);
- ``log.jsonl``: one line per event with ``timestamp`` (ms), ``level``, ``worker`` and ``msg``;
- ``console.log``: the raw stream, each event's ``msg`` as sent, newline-terminated.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

LOG_NAME = "console.log"
TEXT_NAME = "console.txt"
JSONL_NAME = "log.jsonl"
DEFAULT_BATCH = 5_000
# Elasticsearch counts hits exactly up to 10,000 (track_total_hits); the real server's get_task_log
# ``total`` is exact only below that.
EXACT_TOTAL_BELOW = 10_000
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass
class LogResult:
    """Events received, lines shown, the server's count, and problems met."""

    events: int = 0
    lines: int = 0
    server_total: int = 0
    total_capped: bool = False
    bytes: int = 0
    replaced_lines: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves, OSC titles)."""
    return _ANSI.sub("", text)


class ConsoleText:
    """Builds ``console.txt`` as the ClearML UI renders the log: ANSI stripped, ``\\r`` progress collapsed.

    Only the last line can still be overwritten, so every earlier line is written out at once.
    """

    def __init__(self, out: BinaryIO):
        self._out = out
        self._pending: str | None = None
        self._open = False  # the pending line was not ended by a newline: a "\r" may still rewrite it
        self.lines = 0

    def add_plain(self, msgs: list[str]) -> None:
        """:meth:`add` of every message, for messages holding no ``\r`` and no escape (the common page):
        each line but the last is final, so they are written at once."""
        pending, done = self._pending, []
        for msg in msgs:
            if "\n" not in msg:
                if pending is not None:
                    done.append(pending)
                pending, self._open = msg, True
                continue
            pieces = msg.split("\n")
            ended = pieces[-1] == ""
            if ended:
                pieces.pop()
            if pending is not None:
                done.append(pending)
            done += pieces[:-1]
            pending, self._open = pieces[-1], not ended
        if done:
            self._out.write(("\n".join(done) + "\n").encode("utf-8", "backslashreplace"))
            self.lines += len(done)
        self._pending = pending

    def add(self, msg: str) -> None:
        text = strip_ansi(msg)
        if text.startswith("\r") and self._open:
            self._pending = None  # a progress update replaces the unfinished line before it
        pieces = text.split("\n")
        ended = len(pieces) > 1 and pieces[-1] == ""
        if ended:
            pieces.pop()  # a trailing newline ends the event's last line
        for piece in pieces:
            self._emit(_collapse(piece))
        self._open = not ended

    def _emit(self, line: str) -> None:
        if self._pending is not None:
            self._write(self._pending)
        self._pending = line

    def _write(self, line: str) -> None:
        self._out.write((line + "\n").encode("utf-8", "backslashreplace"))
        self.lines += 1

    def close(self) -> None:
        if self._pending is not None:
            self._write(self._pending)
            self._pending = None


def _collapse(line: str) -> str:
    """The final state of a line a progress bar rewrote with carriage returns."""
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[-1] if "\r" in line else line


def _line(msg: Any) -> str:
    text = msg if isinstance(msg, str) else ("" if msg is None else str(msg))
    return text if text.endswith("\n") else text + "\n"


def _raw_bytes(text: str, result: LogResult) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        result.replaced_lines += 1
        return text.encode("utf-8", "backslashreplace")


def _structured(event: dict) -> bytes:
    record = {"timestamp": event.get("timestamp"), "level": event.get("level"),
              "worker": event.get("worker"), "msg": event.get("msg")}
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:  # lone surrogates: orjson refuses them, keep them escaped
        import json

        return json.dumps(record, ensure_ascii=True).encode() + b"\n"


def export_console_log(client, task_id: str, folder: Path, batch_size: int = DEFAULT_BATCH) -> LogResult:
    """Write the task's log to ``console.txt``, ``log.jsonl`` and ``console.log`` under ``folder``.

    Text the server holds that is not valid UTF-8 (lone surrogates from escaped bytes) is written with
    backslash escapes and counted in ``replaced_lines``.
    """
    result = LogResult()
    with open(folder / LOG_NAME, "wb") as raw, open(folder / JSONL_NAME, "wb") as jsonl, \
            open(folder / TEXT_NAME, "wb") as text:
        console = ConsoleText(text)
        _page_log(client, task_id, batch_size, result, raw, jsonl, console)
        console.close()
    result.lines = console.lines
    _check_count(result)
    return result


def _page_log(client, task_id: str, batch_size: int, result: LogResult, raw: BinaryIO, jsonl: BinaryIO,
              console: ConsoleText) -> None:
    from_timestamp = None
    first_total: int | None = None
    while True:
        data = client.events.task_log_page(task_id, batch_size=batch_size, from_timestamp=from_timestamp)
        events = data.get("events") or []
        if first_total is None and data.get("total") is not None:
            first_total = int(data["total"])
        if not events:
            break
        _write_page(events, result, raw, jsonl, console)
        last = events[-1].get("timestamp")
        exact_done = first_total is not None and first_total < EXACT_TOTAL_BELOW and result.events >= first_total
        if last is None or last == from_timestamp or exact_done:
            break
        from_timestamp = last
    total = first_total or 0
    result.total_capped = total >= EXACT_TOTAL_BELOW
    result.server_total = max(total, result.events) if result.total_capped else total


def _write_page(events: list[dict], result: LogResult, raw: BinaryIO, jsonl: BinaryIO,
                console: ConsoleText) -> None:
    """One page of log events into the three files, a page at a time where the text allows."""
    msgs = [m if isinstance(m, str) else ("" if m is None else str(m)) for m in (e.get("msg") for e in events)]
    text = "".join(m if m.endswith("\n") else m + "\n" for m in msgs)
    try:
        blob = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: count and escape them event by event
        blob = b"".join(_raw_bytes(_line(m), result) for m in msgs)
    raw.write(blob)
    jsonl.write(b"".join(_structured(e) for e in events))  # each falls back alone on what orjson refuses
    if "\r" in text or "\x1b" in text:
        for msg in msgs:
            console.add(msg)
    else:
        console.add_plain(msgs)
    for level, n in Counter(str(e.get("level") or "") for e in events).items():
        result.levels[level] = result.levels.get(level, 0) + n
    result.bytes += len(blob)
    result.events += len(events)


def _check_count(result: LogResult) -> None:
    if result.events < result.server_total:
        result.errors.append({"section": "console", "error": f"received {result.events} log events, "
                                                             f"server counted {result.server_total}"})
    if result.replaced_lines:
        result.errors.append({"section": "console", "warning": f"{result.replaced_lines} log events held "
                                                               "text that is not valid UTF-8; written "
                                                               "with backslash escapes"})
