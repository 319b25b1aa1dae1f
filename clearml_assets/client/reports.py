"""``client.reports``: the ``reports.*`` calls (clearml-server 1.8+, API 2.22+): reports are hidden tasks of type
``report`` in ``<project>/.reports``; only these calls make one."""

from __future__ import annotations

from typing import Any, Sequence

from .session import ServiceClient


class ReportsClient(ServiceClient):
    """Reports of one account."""

    def create(self, name: str, *, project: str | None = None, tags: Sequence[str] = (), comment: str = "") -> str:
        """A draft report in the ``.reports`` project of ``project`` (an id; the ``.reports`` project itself is
        used as it is; None: the top-level one); returns its id."""
        fields: dict[str, Any] = {"name": name, "tags": list(tags), "comment": comment}
        if project:
            fields["project"] = project
        return self._session.call("reports.create", **fields)["id"]

    def update(self, report_id: str, **fields: Any) -> None:
        """``reports.update``: name, tags, comment, ``report`` (its markdown), ``report_assets`` (drafts only)."""
        self._session.call("reports.update", task=report_id, **fields)

    def publish(self, report_id: str, message: str = "") -> None:
        """Publish a report."""
        self._session.call("reports.publish", task=report_id, message=message)
