"""Read-only access to the local server's data for the web view, through the server's own API handlers.

Each page read is an in-process call of a registered endpoint with the signed-in identity's company (so
the web view sees exactly what the API shows that key pair, with the same scoping and shapes), limited to
the read endpoints listed in :data:`READS`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import services  # noqa: F401  (registers the endpoints)
from ..core.rawjson import dumps
from ..core.registry import ENDPOINTS, UNLOCKED, Call, parse_request
from ..store import Store

READS = frozenset({
    "projects.get_all_ex", "projects.get_by_id", "tasks.get_all_ex", "tasks.get_by_id", "models.get_all_ex",
    "models.get_by_id", "events.get_task_log", "events.scalar_metrics_iter_histogram", "events.get_task_plots",
    "events.get_task_events", "events.get_task_single_value_metrics",
})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


class ReadApi:
    """Calls read endpoints of the server in process, as one identity.

    Args:
        store: The server's store.
        identity: The signed-in identity (``company``, ``user``) from the session token.
    """

    def __init__(self, store: Store, identity: dict):
        self.store = store
        self.company = str(identity.get("company") or "")
        self.user = str(identity.get("user") or "")

    def __call__(self, endpoint: str, **data: Any) -> Any:
        """The ``data`` part of the endpoint's answer (``ApiError`` as the API would raise it)."""
        if endpoint not in READS:
            raise PermissionError(f"the web view is read-only: {endpoint} is not a read")
        handler = ENDPOINTS[endpoint]
        call = Call(endpoint=endpoint, data=dict(data), company=self.company, user=self.user, store=self.store,
                    extra={"query": {}, "worker": ""}, model=parse_request(endpoint, dict(data)))
        if endpoint in UNLOCKED:
            result = handler(call)
        else:
            with self.store.lock:
                result = handler(call)
        return json.loads(dumps(result if result is not None else {}))

    # -- typed reads -------------------------------------------------------------------------------
    def projects(self) -> list[dict]:
        return self("projects.get_all_ex", only_fields=["id", "name", "description", "created", "system_tags"],
                    order_by=["name"], size=500, page=0).get("projects", [])

    def project(self, project_id: str) -> dict:
        return self("projects.get_by_id", project=project_id)["project"]

    def tasks(self, **filters: Any) -> list[dict]:
        fields = ["id", "name", "status", "type", "project", "last_update", "started", "completed",
                  "last_iteration", "last_metrics", "tags", "system_tags", "runtime"]
        return self("tasks.get_all_ex", only_fields=fields, order_by=["-last_update"], size=500, page=0,
                    **filters).get("tasks", [])

    def task(self, task_id: str) -> dict:
        return self("tasks.get_by_id", task=task_id)["task"]

    def model(self, model_id: str) -> dict:
        return self("models.get_by_id", model=model_id)["model"]

    def models(self, ids: list[str]) -> list[dict]:
        if not ids:
            return []
        return self("models.get_all_ex", id=ids, size=500, page=0).get("models", [])

    def log_lines(self, task_id: str, limit: int = 5000) -> tuple[list[dict], int]:
        """The last ``limit`` log events (oldest first) and the total, messages as the ClearML UI shows
        them: ANSI codes stripped and carriage-return progress collapsed to its final state."""
        got = self("events.get_task_log", task=task_id, batch_size=limit, navigate_earlier=True, order="asc")
        events = got.get("events", [])
        for event in events:
            event["msg"] = clean_log_text(str(event.get("msg", "")))
        return events, int(got.get("total") or len(events))

    def scalars(self, task_id: str) -> dict:
        return self("events.scalar_metrics_iter_histogram", task=task_id, samples=2000, key="iter")

    def single_values(self, task_id: str) -> list[dict]:
        found = self("events.get_task_single_value_metrics", tasks=[task_id]).get("tasks", [])
        return found[0].get("values", []) if found else []

    def plots(self, task_id: str) -> list[dict]:
        return self("events.get_task_plots", task=task_id, iters=1).get("plots", [])

    def debug_images(self, task_id: str) -> list[dict]:
        """The latest image of every metric/variant."""
        got = self("events.get_task_events", task=task_id, event_type="training_debug_image", batch_size=2000,
                   order="desc")
        latest: dict[tuple, dict] = {}
        for event in got.get("events", []):
            latest.setdefault((event.get("metric"), event.get("variant")), event)
        return sorted(latest.values(), key=lambda e: (str(e.get("metric")), str(e.get("variant"))))


def clean_log_text(text: str) -> str:
    """Log text as a terminal would finally show it: no ANSI codes, each line's last CR segment."""
    text = _ANSI.sub("", text)
    lines = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def main_metrics(task: dict) -> dict[str, float]:
    """``metric/variant -> last value`` from a task's ``last_metrics``."""
    out = {}
    for variants in (task.get("last_metrics") or {}).values():
        for entry in (variants or {}).values():
            name = f"{entry.get('metric')}/{entry.get('variant')}"
            if isinstance(entry.get("value"), (int, float)):
                out[name] = entry["value"]
    return out
