"""``client.queues`` and ``client.workers``: where agents take tasks from, and the agents alive."""

from __future__ import annotations

import re

from ..types import Queue, Worker
from .session import ServiceClient


class QueuesClient(ServiceClient):
    """Queues of one account."""

    def find(self, name: str) -> Queue | None:
        """The queue named exactly ``name``, or None."""
        rows = self._session.call("queues.get_all", name=f"^{re.escape(name)}$", only_fields=["id", "name"],
                                  search_hidden=True).get("queues") or []
        return next((Queue.from_api(q) for q in rows if q.get("name") == name), None)


class WorkersClient(ServiceClient):
    """Workers (agents) registered with one account's server."""

    def live(self) -> list[Worker]:
        """Every registered (not expired) worker with the queues it serves."""
        return [Worker.from_api(w) for w in self._session.call("workers.get_all").get("workers") or []]
