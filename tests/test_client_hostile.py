"""The client against a hostile server (tests/hostile_server.py): every misbehaviour ends in a clear
``ClearMLConnectionError``/``ClearMLRequestError`` naming the account, the host and the call, in bounded time
and memory (issue 26, finding 5).

Each test's docstring says what today's main (1f1dae7, the flat ``client.py``) did against the same server,
run with the same calls under their old names.
"""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
from hostile_server import HostileServer, bounded

from clearml_assets.archives.events import PagingReport, iter_task_events
from clearml_assets.archives.logs import export_console_log
from clearml_assets.client import DEFAULT_DEADLINE_SEC, DEFAULT_MAX_RESPONSE_BYTES, ClearMLClient
from clearml_assets.errors import ClearMLAssetsError, ClearMLConnectionError, ClearMLRequestError

SECRET = "hostile-client-secret-0042"
ACCOUNT = "hostile"
HANG_GUARD = 60.0  # only stops a broken case from hanging: nothing here asserts on time
MIB = 1024 * 1024


@pytest.fixture
def server():
    with HostileServer() as hostile:
        yield hostile


def client_of(server: HostileServer, **options: Any) -> ClearMLClient:
    return ClearMLClient(server.url, "AK", SECRET, account=ACCOUNT, files_host=server.url, **options)


def failure(call: Callable[[], Any], kinds: tuple[type, ...] = (ClearMLConnectionError, ClearMLRequestError)
            ) -> ClearMLAssetsError:
    """The error ``call`` ends with, run in a thread so that a hang fails the test instead of stalling it."""
    value, error = bounded(call, HANG_GUARD, "the client did not bound the call")
    assert error is not None, f"no error; the call returned {str(value)[:200]!r}"
    assert isinstance(error, kinds), repr(error)
    return error


def scroll_by_hand(client: ClearMLClient, batch_size: int) -> None:
    """Follow an event scroll page by page, as a caller that keeps its own state does (1,000 pages at most)."""
    scroll_id = None
    for _ in range(1000):
        page = client.events.task_events_page("t1", "plot", batch_size=batch_size, scroll_id=scroll_id)
        scroll_id = page["scroll_id"]


def names_the_call(error: Exception, server: HostileServer, call: str) -> str:
    text = str(error)
    assert f"'{ACCOUNT}'" in text and server.url in text and call in text, text
    assert SECRET not in text
    return text


# -- pagers ---------------------------------------------------------------------------------------------------
def test_a_listing_answered_the_same_page_forever_stops_at_the_second_page(server):
    """main: ``list_models(task=...)`` (the exporter's read) sent ``models.get_all`` for ever (stopped by the
    test after 1,000 calls); ``iter_pages`` compared only consecutive pages."""
    server.misbehave("models.get_all", "same_page")
    error = failure(lambda: list(client_of(server).models.iter(task=["t1"])))
    assert "same rows as page 0" in names_the_call(error, server, "models.get_all")
    assert server.count("models.get_all") == 2


def test_a_listing_cycling_through_pages_stops_at_the_first_repeat(server):
    """main: ``iter_tasks`` compared a page with the previous one only, so pages 0, 1, 2, 0, 1, 2... went on
    for ever (stopped by the test after 1,000 calls)."""
    server.misbehave("tasks.get_all", "page_cycle", period=3)
    error = failure(lambda: list(client_of(server).tasks.iter(only_fields=["id"])))
    assert "page 3 with the same rows as page 0" in names_the_call(error, server, "tasks.get_all")
    assert server.count("tasks.get_all") == 4


def test_an_event_scroll_that_never_ends_is_stopped(server):
    """main: the exporter's event reader followed a scroll that brings new events and no total for ever
    (stopped by the test after 1,000 pages)."""
    server.misbehave("events.get_task_events", "endless_scroll", total=None, batch=100)
    client = client_of(server)
    client.events.max_scroll_pages = 20  # the default, 20,000 pages, is a long test
    error = failure(lambda: [p for p in iter_task_events(client, "t1", "plot", PagingReport(), batch_size=100)])
    assert "kept scrolling for 21 pages" in names_the_call(error, server, "events.get_task_events")
    assert server.count("events.get_task_events") == 21


def test_an_event_scroll_past_its_own_total_is_stopped(server):
    """main: a caller paging by scroll id (the exporter stops at the total itself) got new events for ever
    (stopped by the test after 1,000 pages)."""
    server.misbehave("events.get_task_events", "endless_scroll", total=5, batch=100)
    error = failure(lambda: scroll_by_hand(client_of(server), batch_size=100))
    assert "past the 5 events it counted" in names_the_call(error, server, "events.get_task_events")
    assert server.count("events.get_task_events") == 2


def test_an_event_scroll_whose_id_never_advances_is_stopped(server):
    """main: the same page and scroll id again and again; the client had no scroll guard (a caller's loop
    went on for ever, stopped by the test after 1,000 pages)."""
    server.misbehave("events.get_task_events", "same_scroll")
    error = failure(lambda: scroll_by_hand(client_of(server), batch_size=3))
    assert "does not advance" in names_the_call(error, server, "events.get_task_events")
    assert server.count("events.get_task_events") == 3  # one repeat is a real server's restart: allowed


def test_a_log_that_ignores_from_timestamp_is_stopped(server, tmp_path: Path):
    """main: ``export_console_log`` wrote a 9,000-line log made of the same two pages over and over (it stopped
    only at the server's total) and reported no error."""
    server.misbehave("events.get_task_log", "log_cycle", period=2)
    error = failure(lambda: export_console_log(client_of(server), "t1", tmp_path))
    assert "from before the from_timestamp" in names_the_call(error, server, "events.get_task_log")
    assert server.count("events.get_task_log") == 3


# -- bodies ---------------------------------------------------------------------------------------------------
def traced_failure(client: ClearMLClient) -> tuple[ClearMLAssetsError, int]:
    """The error of ``tasks.get_all`` and the peak of Python allocations (tracemalloc) while it ran."""
    tracemalloc.start()
    try:
        error = failure(lambda: client.session.call("tasks.get_all"))
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_a_300_mb_answer_is_refused_without_being_held(server, declare_length: bool):
    """main: read the body whole (``resp.content``): still reading after 45 s here under tracemalloc (1,325 MiB
    RSS and 111 s in the issue's run)."""
    server.misbehave("tasks.get_all", "huge_body", size=300 * 1000 * 1000, declare_length=declare_length)
    error, peak = traced_failure(client_of(server))
    text = names_the_call(error, server, "tasks.get_all")
    assert f"{DEFAULT_MAX_RESPONSE_BYTES // MIB} MiB" in text and "max_response_mib" in text
    assert ("declared" in text) is declare_length
    assert peak < DEFAULT_MAX_RESPONSE_BYTES + 64 * MIB  # never more than the cap (and a chunk) in memory


def test_a_smaller_response_cap_bounds_memory_to_it(server):
    """main had no cap (as above)."""
    server.misbehave("tasks.get_all", "huge_body", size=300 * 1000 * 1000)
    error, peak = traced_failure(client_of(server, max_response_bytes=4 * MIB))
    assert "4 MiB" in names_the_call(error, server, "tasks.get_all")
    assert peak < 32 * MIB


def test_malformed_json_is_named(server):
    """main: ``tasks.get_all failed with 200/None: OK`` (neither the host nor what was wrong)."""
    server.misbehave("tasks.get_all", "malformed_json")
    error = failure(lambda: client_of(server).session.call("tasks.get_all"))
    assert isinstance(error, ClearMLRequestError)
    assert "not a ClearML JSON answer" in names_the_call(error, server, "tasks.get_all")


def test_a_connection_reset_mid_body_is_named(server):
    """main: ``the connection to <host> broke in the middle of an answer`` without the call."""
    server.misbehave("tasks.get_by_id", "reset_mid_body", times=10)
    error = failure(lambda: client_of(server).tasks.get("t1"))
    assert isinstance(error, ClearMLConnectionError)
    assert "broke in the middle" in names_the_call(error, server, "tasks.get_by_id")


def test_a_download_reset_mid_body_keeps_nothing(server, tmp_path: Path):
    """main: a ``ChunkedEncodingError``-style message without the file; here also checked: no partial file."""
    server.misbehave("/p/t/", "reset_mid_body")
    dest = tmp_path / "a.bin"
    error = failure(lambda: client_of(server).files.download(f"{server.url}/p/t/a.bin", dest))
    assert "download of" in names_the_call(error, server, f"{server.url}/p/t/a.bin")
    assert list(tmp_path.iterdir()) == []


# -- time -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_a_dripped_answer_fails_at_the_deadline(server, headers: bool):
    """main: a read timeout per byte only: one byte every 0.5 s kept the call alive until the whole answer
    had dripped (the body: it succeeded 40 s later; the headers too: still running after 45 s; the issue's
    larger answer was still running after 200 s)."""
    server.misbehave("tasks.get_all", "drip", interval=0.5, headers=headers)
    error = failure(lambda: client_of(server, deadline_seconds=3).session.call("tasks.get_all"))
    assert isinstance(error, ClearMLConnectionError)
    assert "3s deadline" in names_the_call(error, server, "tasks.get_all")


def test_a_dripped_download_fails_at_the_deadline(server, tmp_path: Path):
    """main: as above, for a file: the download lasted as long as the drip, then succeeded."""
    server.misbehave("/p/", "drip", interval=0.5)
    dest = tmp_path / "a.bin"
    error = failure(lambda: client_of(server, deadline_seconds=3).files.download(f"{server.url}/p/a.bin", dest))
    assert "deadline" in names_the_call(error, server, "download of")
    assert list(tmp_path.iterdir()) == []


def test_the_default_deadline_is_the_readmes_60_seconds(server):
    """The README's bound for a server that stops answering (main had none: 120 s per read)."""
    assert DEFAULT_DEADLINE_SEC == 60.0 and client_of(server).session.deadline_seconds == 60.0


def test_a_stalled_server_fails_at_the_deadline(server):
    """main: waited the 120 s read timeout, then sent the read again twice (6 min)."""
    server.misbehave("projects.get_all", "stall")
    error = failure(lambda: client_of(server, deadline_seconds=2).session.call("projects.get_all"))
    assert "2s deadline" in names_the_call(error, server, "projects.get_all")


def test_an_event_batch_to_a_stalled_server_fails_at_its_deadline_and_is_not_resent(server):
    """``events.add_batch`` gets 300 s (the server stores a batch before it answers), not longer (main: 300 s read
    timeout per byte, so a drip held it for ever)."""
    from clearml_assets.client.events import ADD_BATCH_DEADLINE_SEC

    assert client_of(server).events.add_batch_deadline_seconds == ADD_BATCH_DEADLINE_SEC == 300
    server.misbehave("events.add_batch", "stall")
    client = client_of(server, deadline_seconds=1)
    client.events.add_batch_deadline_seconds = 2  # the 300 s default is a long test
    error = failure(lambda: client.events.add_batch([{"type": "log", "task": "t1", "msg": "x", "timestamp": 1}]))
    assert "2s deadline" in names_the_call(error, server, "events.add_batch")
    assert server.count("events.add_batch") == 1


# -- storms ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 503])
def test_a_storm_without_retry_after_gives_up_after_the_retries(server, status: int):
    """main: the same outcome (3 calls, then an error naming the call): kept as the baseline of the storms."""
    server.misbehave("tasks.get_all", "storm", status=status)
    error = failure(lambda: client_of(server, retries=2).session.call("tasks.get_all"))
    assert f"HTTP {status}" in names_the_call(error, server, "tasks.get_all")
    assert server.count("tasks.get_all") == 3


def test_a_retry_after_beyond_the_deadline_fails_at_once(server):
    """main: waited the asked 20 s twice (under its 30 s bound), 40 s for a call, then failed."""
    server.misbehave("tasks.get_all", "storm", status=503, retry_after=20)
    error = failure(lambda: client_of(server, deadline_seconds=5).session.call("tasks.get_all"))
    assert "asked to wait 20s" in names_the_call(error, server, "tasks.get_all")
    assert server.count("tasks.get_all") == 1


def test_a_storm_at_login_names_the_call(server):
    """main: ``<host> answered HTTP 503`` without saying it was the login."""
    server.misbehave("auth.login", "storm", status=503)
    error = failure(lambda: client_of(server).tasks.get("t1"))
    assert "HTTP 503" in names_the_call(error, server, "auth.login")


def test_a_storm_then_calm_is_ridden_out(server, tmp_path: Path):
    """A short storm with ``Retry-After: 0`` on a download: retried, the file arrives whole (main: the same;
    kept as the baseline)."""
    server.misbehave("/p/", "storm", status=503, retry_after=0, times=2)  # then the file: an empty success envelope
    dest = tmp_path / "a.bin"
    size = client_of(server, retries=2).files.download(f"{server.url}/p/a.bin", dest, digest=hashlib.sha256())
    assert size == dest.stat().st_size > 0 and server.count("/p/") == 3


def test_the_accounts_bounds_reach_its_client(server):
    """``request_deadline_seconds`` and ``max_response_mib`` of an account configure the resource's client."""
    from clearml_assets.resource import ClearMLAccount, ClearMLResource

    account = ClearMLAccount(api_host=server.url, files_host=server.url, access_key="AK", secret_key=SECRET,
                             request_deadline_seconds=2, max_response_mib=1)
    client = ClearMLResource(accounts={ACCOUNT: account}, default_account=ACCOUNT).client()
    assert (client.session.deadline_seconds, client.session.max_response_bytes) == (2, MIB)
    server.misbehave("tasks.get_all", "huge_body", size=10 * MIB)
    assert "1 MiB" in names_the_call(failure(lambda: client.session.call("tasks.get_all")), server, "tasks.get_all")
    server.misbehave("tasks.get_all", "stall")
    assert "2s deadline" in names_the_call(failure(lambda: client.session.call("tasks.get_all")), server,
                                           "tasks.get_all")


# -- the fixture in front of a real server: the package's read paths ------------------------------------------
def test_an_export_through_a_proxy_with_one_broken_call_is_incomplete(clearml_server, tmp_path: Path):
    """The exporter against the local server behind the hostile proxy, ``models.get_all`` answering the same page
    for ever: the archive is written ``incomplete`` (its check fails, the next run exports it again) with the
    error naming the call (main: the export paged ``models.get_all`` for ever)."""
    from seeding import DemoSpec, RawSeeder

    from clearml_assets.archives.exporter import ClearMLTaskExporter

    info = clearml_server.info
    seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
    task_id = seeder.seed_task(seeder.project("hostile proxy"), "hostile proxy", "proxied task",
                               DemoSpec(1, 3, 3, 1, 100, 0, 0))
    with HostileServer(upstream=info.api_host) as api:
        api.misbehave("models.get_all", "same_page", rows=2)
        client = ClearMLClient(api.url, info.access_key, info.secret_key, account=ACCOUNT, files_host=info.files_host)
        exporter = ClearMLTaskExporter(client, ACCOUNT, tmp_path / "exports")
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: outcome.update(result=exporter.export_task(task_id)), daemon=True)
        worker.start()
        worker.join(HANG_GUARD)
        assert "result" in outcome, "the export did not end"
        result = outcome["result"]
        assert result.manifest["status"] == "incomplete"
        (issue,) = [i for i in result.issues if i.get("section") == "models"]
        assert "models.get_all" in issue["error"] and api.url in issue["error"] and "same rows" in issue["error"]
        assert api.count("models.get_all") <= 4 and api.count("tasks.get_by_id") >= 1  # the rest was read


def test_the_sensors_poll_fails_at_its_request_timeout_against_a_drip(server):
    """The completed-task sensor's poll (``request_timeout_seconds`` = the call's deadline) against a dripped
    ``tasks.get_all`` (main: a read timeout per byte, so the poll lasted as long as the drip, 40 s)."""
    from clearml_assets.automation.cursor import ClearMLTaskCursor
    from clearml_assets.automation.polling import poll_finished_tasks

    server.misbehave("tasks.get_all", "drip", interval=0.5)
    client = client_of(server)
    error = failure(lambda: poll_finished_tasks(client, ClearMLTaskCursor(), request_timeout_seconds=2))
    assert "2s deadline" in names_the_call(error, server, "tasks.get_all")
