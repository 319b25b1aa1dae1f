"""Workers (clearml-server ``bll/workers``): live workers by registration expiry, and the watchdog stopping tasks
whose worker stopped reporting (``bll/task/non_responsive_tasks_watchdog.py``)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from ...core import Call, now_iso

# The real server's services.tasks.non_responsive_tasks_watchdog (threshold_sec, watch_interval_sec).
NONRESPONSIVE_ENV = "CLEARML_LOCAL_SERVER_NONRESPONSIVE_SEC"
WATCH_INTERVAL_ENV = "CLEARML_LOCAL_SERVER_NONRESPONSIVE_WATCH_SEC"
_last_sweep: dict[int, float] = {}


def _iso_seconds(value: Any) -> float:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return time.time()
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def stop_non_responsive(call: Call) -> int:
    """Stop ``in_progress`` tasks not updated for the threshold (7200 s), as the real server's watchdog.

    Its agent or process is gone (killed, machine lost): without this such a task would stay running
    for ever. The real server runs it in a thread every ``watch_interval_sec`` (900 s); the local server
    runs it at most that often when agents poll (``workers.*``, ``queues.get_next_task``).
    """
    now = time.time()
    if now - _last_sweep.get(id(call.store), 0.0) < float(os.environ.get(WATCH_INTERVAL_ENV, 900)):
        return 0
    _last_sweep[id(call.store)] = now
    threshold = float(os.environ.get(NONRESPONSIVE_ENV, 7200))
    stopped = 0
    for task in call.store.all("tasks"):
        if task.get("status") == "in_progress" and _iso_seconds(task.get("last_update")) < now - threshold:
            stamp = now_iso()
            task.update(status="stopped", status_reason="Forced stop (non-responsive)",
                        status_message="Forced stop (non-responsive)", status_changed=stamp, last_update=stamp,
                        last_change=stamp)
            call.store.save("tasks", task)
            stopped += 1
    return stopped


def alive(doc: dict, now: float | None = None) -> bool:
    return doc.get("expires", 0) > (now or time.time())


def live_workers(call: Call, last_seen: float | None = None) -> list[dict]:
    """The company's workers whose registration has not expired (and active within ``last_seen`` s)."""
    now = time.time()
    out = []
    for doc in call.store.all("workers", call.company):
        if not alive(doc, now):
            call.store.delete("workers", doc["id"])
            continue
        if last_seen and doc["last_activity_ts"] < now - max(1, last_seen):
            continue
        out.append(doc)
    return out
