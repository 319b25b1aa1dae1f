"""Which clearml-server release the local server presents itself as, and what that release's API is.

By default the local server is clearml-server's newest release (2.3.0, API 2.34: what app.clear.ml and fresh
installs run). ``CLEARML_ASSETS_SERVER_VERSION=1.9.2`` (or ``LocalServer(server_version=...)``) makes it present
itself as 1.9.2 (API 2.23) instead, with that release's behaviour where the two differ, so clients can be tested
against both.

As on the real server, a request's path version (``/v2.23/tasks.get_all``; none means the newest) chooses the
endpoint: one whose ``min_version`` is above the requested version, or above the release's API, does not exist
(404). Behaviour that changed between releases follows the release (e.g. model events keep their iterations
after 1.9.2); behaviour the real server keys on the requested version follows the request, never beyond what the
release has (``/v999.0`` on a 1.9.2 server is 2.23).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SERVER_VERSION_ENV = "CLEARML_ASSETS_SERVER_VERSION"
"""Environment variable choosing the release the local server presents itself as."""

Version = tuple[int, int]


def parse_version(text: str) -> Version:
    """``"2.23"`` as ``(2, 23)``; raises ValueError for anything else."""
    major, _, minor = str(text).strip().lstrip("v").partition(".")
    return int(major), int(minor or 0)


def format_version(version: Version) -> str:
    """``(2, 23)`` as ``"2.23"``."""
    return f"{version[0]}.{version[1]}"


def _after_1_9_2(doc: str) -> property:
    """A behaviour of the releases after 1.9.2 (API 2.23), as a documented flag of :class:`ServerRelease`."""
    return property(lambda self: self.api > (2, 23), doc=doc)


@dataclass(frozen=True)
class ServerRelease:
    """A clearml-server release the local server can present itself as.

    Attributes:
        version: The release (``server.info``'s ``version``, the token's ``server_version``).
        api_version: The newest API version it serves (``server.info``'s ``api_version``).
    """

    version: str
    api_version: str

    @property
    def api(self) -> Version:
        """The newest API version as a tuple."""
        return parse_version(self.api_version)

    def serves(self, min_version: str) -> bool:
        """Whether an endpoint added at ``min_version`` exists in this release."""
        return parse_version(min_version) <= self.api

    def effective(self, requested: str | None) -> Version:
        """The API version a request gets: what it asked for, never beyond this release's newest."""
        if not requested:
            return self.api
        return min(parse_version(requested), self.api)

    model_events_keep_iterations = _after_1_9_2(
        "Model events keep the iteration they are sent with and update the model's ``last_iteration``/"
        "``last_metrics`` (1.9.2 stored every one at iteration 0 and left the model as it was).")
    scalar_x_axis_labels = _after_1_9_2(
        "A scalar event's ``x_axis_label`` is kept in its series' ``last_metrics`` and shown by the histogram.")
    own_contents_leave_out_archived = _after_1_9_2(
        "``projects.get_all_ex(check_own_contents)`` counts only tasks and models that are not archived.")
    project_delete_counts_pipelines_and_datasets = _after_1_9_2(
        "``projects.validate_delete``/``delete`` count (and refuse) pipelines, datasets and reports on their own.")
    delete_lists_no_event_urls = _after_1_9_2(
        "``tasks.delete``/``reset`` with ``return_file_urls`` no longer list the events' files (1.9.2 did).")
    lenient_dequeue = _after_1_9_2(
        "``tasks.dequeue`` takes any task (one that is not queued is left as it is) and a ``new_status``.")
    queue_moves_within_queue = _after_1_9_2(
        "Queue moves keep the task within the queue and answer where it is (1.9.2: the position asked for, -1 for "
        "the back).")
    queue_add_records_queue = _after_1_9_2("``queues.add_task`` records the queue in the task.")
    worker_stats_histograms = _after_1_9_2(
        "Worker statistics are filed under the worker's id and answered as date histograms over the whole range "
        "(1.9.2: under its key, the buckets holding data); ``queues.get_all_ex`` lists the workers' keys.")


RELEASES: dict[str, ServerRelease] = {
    "1.9.2": ServerRelease("1.9.2", "2.23"),
    "2.3.0": ServerRelease("2.3.0", "2.34"),
}
NEWEST = RELEASES["2.3.0"]


def server_release(version: str | None = None) -> ServerRelease:
    """The release to present: ``version``, else ``CLEARML_ASSETS_SERVER_VERSION``, else the newest.

    Raises:
        ValueError: The version is not one the local server can present (the message lists them).
    """
    chosen = (version or os.environ.get(SERVER_VERSION_ENV) or NEWEST.version).strip().lstrip("v")
    release = RELEASES.get(chosen)
    if release is None:
        known = ", ".join(sorted(RELEASES))
        raise ValueError(f"the local server cannot present itself as clearml-server {chosen!r} (set by "
                         f"{SERVER_VERSION_ENV} or --server-version); known releases: {known}")
    return release
