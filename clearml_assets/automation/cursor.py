"""The completed-task sensor's cursor: the server's status-change time and the tasks already seen.

Only timestamps written by the ClearML server are stored or compared, never the daemon's clock, so
clock skew between Dagster and ClearML cannot lose a task. The cursor keeps ``time``, the newest
``status_changed`` processed, and ``recent``, every processed task whose ``status_changed`` lies within
``overlap_seconds`` of ``time``. The next query starts at ``time - overlap_seconds``: tasks sharing a
timestamp, tasks committed late by a busy server, and tasks the server renders with less precision than
it sorts are all seen again and skipped by ``recent``, not lost. A task that completes again later (reset
and re-run, or published) has a new ``status_changed`` and counts as new. ``cap`` remembers the page length
of a server that was seen to cut ``tasks.get_all`` pages below the size asked for (the real server never
does below 500), so that a short page is only taken as the end where it is shorter than that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..errors import ClearMLConfigError
from ..timestamps import parse_clearml_time

CURSOR_VERSION = 1


def format_server_time(when: datetime) -> str:
    """An aware datetime in the ISO form both the real ClearML server and the local server parse."""
    return when.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class ClearMLTaskCursor:
    """Where the completed-task sensor of one account stands.

    Attributes:
        time: ``status_changed`` of the newest processed task, as the server rendered it (None: never ran).
        recent: Task id -> ``status_changed`` of processed tasks within the overlap of ``time``.
        cap: The longest page the server was seen to cut short (None: it never did).
    """

    time: str | None = None
    recent: dict[str, str] = field(default_factory=dict)
    cap: int | None = None

    # -- serialization ---------------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str | None) -> "ClearMLTaskCursor":
        """Parse a stored cursor; an empty one means "from the beginning".

        Raises:
            ClearMLConfigError: The text is not a cursor of this sensor (reset the cursor in the UI).
        """
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("v") != CURSOR_VERSION:
                raise ValueError(f"version {data.get('v')!r}")
            time = data.get("time")
            recent = {str(k): str(v) for k, v in (data.get("recent") or {}).items()}
            if time is not None and parse_clearml_time(time) is None:
                raise ValueError(f"unparseable time {time!r}")
            cap = data.get("cap")
            if cap is not None and (not isinstance(cap, int) or cap < 1):
                raise ValueError(f"page cap {cap!r}")
        except (ValueError, TypeError, AttributeError) as exc:
            raise ClearMLConfigError(
                f"The completed-task sensor's cursor is not valid ({exc}): {text[:200]!r}. Clear or set it in "
                "the Dagster UI (Sensors > the sensor > Cursor), e.g. to "
                '{"v": 1, "time": "2024-01-01T00:00:00+00:00", "recent": {}}.') from None
        return cls(time=time, recent=recent, cap=cap)

    def to_json(self) -> str:
        """The cursor as compact JSON (what Dagster stores)."""
        data: dict = {"v": CURSOR_VERSION, "time": self.time, "recent": dict(sorted(self.recent.items()))}
        if self.cap is not None:
            data["cap"] = self.cap
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def starting_at(cls, when: datetime | str) -> "ClearMLTaskCursor":
        """A cursor that ignores every task whose status changed before ``when`` (server time)."""
        parsed = parse_clearml_time(when) if isinstance(when, str) else when
        if parsed is None:
            raise ClearMLConfigError(f"Cannot parse the start time {when!r}: use ISO 8601, e.g. "
                                     "2024-01-31T00:00:00+00:00.")
        return cls(time=format_server_time(parsed))

    # -- logic -----------------------------------------------------------------------------------
    def lower_bound(self, overlap_seconds: float, max_seen: int | None = None) -> str | None:
        """The ``status_changed`` lower bound of the next query (``>=``), or None for all history.

        Args:
            overlap_seconds: Look this far before ``time`` again.
            max_seen: Raise the bound so that at most this many already processed tasks lie at or after
                it (tasks sharing ``time`` always do): the first page then always has room for new
                tasks, however many completed within the overlap.
        """
        when = parse_clearml_time(self.time)
        if when is None:
            return None
        bound = when - timedelta(seconds=overlap_seconds)
        if max_seen is not None and max_seen > 0:
            times = sorted((t for v in self.recent.values() if (t := parse_clearml_time(v)) and t >= bound),
                           reverse=True)
            if len(times) > max_seen:
                nth = times[max_seen - 1]
                # ties at the nth newest time would exceed max_seen: start just after them
                bound = nth if len(times) == max_seen or times[max_seen] < nth else \
                    min((t for t in times if t > nth), default=when)
        return format_server_time(bound)

    def is_new(self, task_id: str, status_changed: str) -> bool:
        """Whether this status change of the task has not been processed yet."""
        return self.recent.get(task_id) != status_changed

    def advance(self, task_id: str, status_changed: str) -> None:
        """Record a processed task (rows arrive ordered by ``status_changed``, ``id``)."""
        self.recent[task_id] = status_changed
        new, old = parse_clearml_time(status_changed), parse_clearml_time(self.time)
        if new is not None and (old is None or new > old):
            self.time = status_changed

    def prune(self, overlap_seconds: float) -> None:
        """Forget processed tasks older than the overlap window (the next query cannot return them)."""
        when = parse_clearml_time(self.time)
        if when is None:
            return
        floor = when - timedelta(seconds=overlap_seconds)
        self.recent = {k: v for k, v in self.recent.items()
                       if (t := parse_clearml_time(v)) is not None and t >= floor}
