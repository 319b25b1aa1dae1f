"""The local server's fast paths for ``*.get_all`` at 100,000 tasks order and filter exactly as before."""

from __future__ import annotations

import random
from functools import cmp_to_key

from clearml_assets.local_server.store.filters import _parse_time, match_dates
from clearml_assets.local_server.store.ordering import _sort_key_cmp, _sorted_by_keys, sort_docs
from clearml_assets.timestamps import parse_clearml_time


def _docs(rng: random.Random, n: int) -> list[dict]:
    times = [None, "", "2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00.5+00:00", "2023-12-31T23:59:59+00:00"]
    return [{"id": f"{rng.randrange(16 ** 8):08x}", "name": rng.choice(["a", "b", "B", "a b", None]),
             "status_changed": rng.choice(times), "nested": {"x": rng.choice(["1", "2", None])}}
            for _ in range(n)]


def test_key_sort_orders_as_the_comparison_does():
    rng = random.Random(24)
    for _ in range(200):
        docs = _docs(rng, rng.randrange(0, 40))
        fields = rng.sample(["name", "status_changed", "nested.x", "id"], rng.randrange(1, 4))
        order = [(f, rng.random() < 0.5) for f in fields] + [("id", False)]
        expected = sorted(docs, key=cmp_to_key(_sort_key_cmp(order)))
        got = _sorted_by_keys(docs, order)
        assert [d["id"] for d in got] == [d["id"] for d in expected]


def test_values_that_are_not_strings_keep_the_comparison():
    docs = [{"id": "b", "last_iteration": 10}, {"id": "a", "last_iteration": 9}, {"id": "c"}]
    assert _sorted_by_keys(docs, [("last_iteration", False), ("id", False)]) is None
    assert [d["id"] for d in sort_docs(docs, ["last_iteration"])] == ["a", "b", "c"]
    assert [d["id"] for d in sort_docs(docs, ["-last_iteration"])] == ["b", "a", "c"]


def test_date_filter_parses_each_string_once_and_answers_as_before():
    for value in ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00Z", "not a date", 1_700_000_000_000, None, ""):
        assert _parse_time(value) == parse_clearml_time(value)
    assert match_dates("2024-01-02T00:00:00+00:00", [">=2024-01-01T00:00:00+00:00"], "status_changed")
    assert not match_dates("2023-01-02T00:00:00+00:00", [">=2024-01-01T00:00:00+00:00"], "status_changed")
