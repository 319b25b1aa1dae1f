"""``PipesClearMLMessageReader``: the Dagster Pipes messages a ClearML task writes to its log, read while it runs."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from dagster._core.pipes.client import PipesMessageReader
from dagster._core.pipes.context import PipesMessageHandler

from .protocol import CHANNEL_KEY, parse_messages
from .tasks_api import TaskControl


class PipesClearMLMessageReader(PipesMessageReader):
    """Reads Pipes messages from a ClearML task's log while it runs, in order, each once.

    Args:
        control: Task operations of the account the task runs in.
        poll_interval: Seconds between two reads of the task's log.
    """

    def __init__(self, control: TaskControl, poll_interval: float = 1.0):
        self._control = control
        self._poll_interval = poll_interval
        self._task_id: str | None = None
        self._handler: PipesMessageHandler | None = None
        self._next_seq = 1
        self._pending: dict[int, dict] = {}
        self._since = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.closed = False
        self.exception: dict | None = None
        """The exception the script reported when it closed Pipes (``name``, ``message``, ``stack``)."""

    @property
    def expected_writer_count(self) -> int:
        """One writer: the task's script (overridden without the base class's preview warning)."""
        return 1

    def attach(self, task_id: str) -> None:
        """Start following ``task_id``'s log."""
        self._task_id = task_id

    @contextmanager
    def read_messages(self, handler: PipesMessageHandler) -> Iterator[dict]:
        self._handler = handler
        thread = threading.Thread(target=self._follow, name="pipes-clearml-reader", daemon=True)
        thread.start()
        try:
            yield {CHANNEL_KEY: True}
        finally:
            self._stop.set()
            thread.join(30)
            self.poll()  # what arrived after the last read

    def _follow(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a transient read error; the next poll retries
                pass

    def poll(self) -> int:
        """Read the log once and hand over every message now in sequence; returns how many."""
        if self._task_id is None or self._handler is None:
            return 0
        with self._lock:
            # Timestamps come from the writer's clock and batches may land out of order: re-read a window.
            events = self._control.log_events(self._task_id, since_ms=max(0, self._since - 60_000))
            for event in events:
                self._since = max(self._since, int(event.get("timestamp") or 0))
                for seq, message in parse_messages(str(event.get("msg") or "")):
                    if seq >= self._next_seq:
                        self._pending[seq] = message
            handed = 0
            while self._next_seq in self._pending:
                message = self._pending.pop(self._next_seq)
                self._next_seq += 1
                self._handler.handle_message(message)
                handed += 1
                if message.get("method") == "closed":
                    self.closed = True
                    self.exception = (message.get("params") or {}).get("exception") or None
            return handed

    def drain(self, timeout: float) -> None:
        """After the task ended: read until the ``closed`` message arrived or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.poll()
            if not self.closed:
                time.sleep(min(self._poll_interval, 0.5))

    def no_messages_debug_text(self) -> str:
        return ("Attempted to read Pipes messages from the ClearML task's log; the script must call "
                "clearml_assets.pipes.open_clearml_pipes().")
