"""The completed-task sensor's cursor: serialization, overlap window, re-completion (pure logic)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clearml_assets.automation.cursor import ClearMLTaskCursor, format_server_time
from clearml_assets.timestamps import parse_clearml_time
from clearml_assets.errors import ClearMLConfigError

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return format_server_time(T0 + timedelta(seconds=seconds))


def test_round_trip_and_empty():
    assert ClearMLTaskCursor.from_json(None) == ClearMLTaskCursor()
    assert ClearMLTaskCursor.from_json("") == ClearMLTaskCursor()
    cursor = ClearMLTaskCursor()
    cursor.advance("b", at(1))
    cursor.advance("a", at(1))
    again = ClearMLTaskCursor.from_json(cursor.to_json())
    assert again == cursor and again.time == at(1) and again.recent == {"a": at(1), "b": at(1)}


def test_page_cap_round_trips_and_is_left_out_when_unknown():
    assert '"cap"' not in ClearMLTaskCursor().to_json()
    assert ClearMLTaskCursor.from_json(ClearMLTaskCursor(time=at(1), cap=3).to_json()).cap == 3


@pytest.mark.parametrize("text", ["not json", "[]", '{"v": 2, "time": null}', '{"v": 1, "time": "yesterday"}',
                                  '{"v": 1, "time": null, "cap": 0}', '{"v": 1, "time": null, "cap": "3"}'])
def test_invalid_cursor_names_the_fix(text):
    with pytest.raises(ClearMLConfigError, match="Clear or set it in the Dagster UI"):
        ClearMLTaskCursor.from_json(text)


def test_time_only_moves_forward_and_bound_has_overlap():
    cursor = ClearMLTaskCursor()
    assert cursor.lower_bound(5) is None
    cursor.advance("x", at(10))
    cursor.advance("late", at(8))  # a late commit seen in the overlap window
    assert cursor.time == at(10)
    assert parse_clearml_time(cursor.lower_bound(5)) == T0 + timedelta(seconds=5)
    assert parse_clearml_time(cursor.lower_bound(0)) == T0 + timedelta(seconds=10)


def test_is_new_skips_seen_and_accepts_recompletion():
    cursor = ClearMLTaskCursor()
    cursor.advance("t1", at(0))
    assert not cursor.is_new("t1", at(0))
    assert cursor.is_new("t1", at(30))  # reset and completed again
    assert cursor.is_new("t2", at(0))  # same timestamp, other task


def test_prune_keeps_the_overlap_window_only():
    cursor = ClearMLTaskCursor()
    for i, second in enumerate([0, 3, 6, 9, 10]):
        cursor.advance(f"t{i}", at(second))
    cursor.prune(4)
    assert sorted(cursor.recent) == ["t2", "t3", "t4"]  # >= 10 - 4 = 6 (the bound itself is kept)
    cursor.prune(0)
    assert sorted(cursor.recent) == ["t4"]


def test_server_time_forms():
    assert parse_clearml_time("2024-05-01T12:00:00.123Z") == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    assert parse_clearml_time("2024-05-01T12:00:00.123") == parse_clearml_time("2024-05-01T12:00:00.123+00:00")
    assert parse_clearml_time("2024-05-01T14:00:00.123+02:00") == parse_clearml_time("2024-05-01T12:00:00.123Z")
    assert parse_clearml_time(1714564800) == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_clearml_time(None) is None and parse_clearml_time("garbage") is None
    start = ClearMLTaskCursor.starting_at("2024-05-01T12:00:00Z")
    assert start.time == "2024-05-01T12:00:00.000000+00:00" and start.recent == {}
    with pytest.raises(ClearMLConfigError, match="Cannot parse the start time"):
        ClearMLTaskCursor.starting_at("soon")


def test_bound_is_raised_so_known_tasks_never_fill_a_page():
    cursor = ClearMLTaskCursor()
    for i, second in enumerate([1, 2, 3, 3, 4, 5]):
        cursor.advance(f"t{i}", at(second))
    assert parse_clearml_time(cursor.lower_bound(10, max_seen=100)) == T0 - timedelta(seconds=5)
    assert parse_clearml_time(cursor.lower_bound(10, max_seen=2)) == T0 + timedelta(seconds=4)
    # the 3rd newest time (3 s) is shared by two tasks: starting there would re-read 4, so start at 4 s
    assert parse_clearml_time(cursor.lower_bound(10, max_seen=3)) == T0 + timedelta(seconds=4)
    assert parse_clearml_time(cursor.lower_bound(10, max_seen=4)) == T0 + timedelta(seconds=3)
    shared = ClearMLTaskCursor()
    for i in range(5):
        shared.advance(f"s{i}", at(7))
    assert parse_clearml_time(shared.lower_bound(10, max_seen=2)) == T0 + timedelta(seconds=7)
