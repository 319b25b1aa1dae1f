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


def _store_with_tasks(tmp_path, rng: random.Random, n: int):
    from clearml_assets.local_server.store import Store

    store = Store(tmp_path)
    times = [f"2024-01-0{d}T0{h}:00:00+00:00" for d in range(1, 4) for h in range(3)] + [None, ""]
    for i in range(n):
        store.save("tasks", {"id": f"{rng.randrange(16 ** 6):06x}{i:04d}", "company": rng.choice(["c", "c", "", "other"]),
                             "name": rng.choice(["alpha", "beta", "gamma"]), "status_changed": rng.choice(times),
                             "status": rng.choice(["completed", "published", "in_progress"]),
                             "system_tags": rng.choice([[], ["hidden"]])})
    return store


def _query(rng: random.Random) -> dict:
    data: dict = {"order_by": rng.choice([["status_changed", "id"], ["status_changed"], ["-status_changed"],
                                          ["name", "id"]]),
                  "page": rng.choice([0, 0, 1, 3]), "page_size": rng.choice([1, 3, 7, 500])}
    if rng.random() < 0.7:
        data["status"] = rng.sample(["completed", "published", "in_progress"], rng.randrange(1, 3))
    if rng.random() < 0.7:
        data["status_changed"] = [rng.choice([">=", ">", "<"]) + f"2024-01-0{rng.randrange(1, 4)}T01:00:00Z"]
    if rng.random() < 0.3:
        data["name"] = rng.choice(["al", "^b", "a$"])
    return data


def test_ordered_index_pages_answer_as_the_full_filter_and_sort(tmp_path):
    """tasks.get_all's index path (store/ordered.py) against filtering and sorting every document, with saves,
    changes and deletes in between (the index is kept up to date by the store's writes)."""
    from clearml_assets.local_server.core.registry import Call
    from clearml_assets.local_server.services.tasks import TASK_QUERY, _not_hidden
    from clearml_assets.local_server.store.queries import get_all

    rng = random.Random(2424)
    store = _store_with_tasks(tmp_path, rng, 300)
    served = 0
    for round_ in range(300):
        data = _query(rng)
        call = Call("tasks.get_all", data, "c", "u", store)
        visible = rng.choice([None, _not_hidden])
        fast = get_all(call, "tasks", "tasks", data=dict(data), visible=visible, **TASK_QUERY)
        docs = [d for d in store.all("tasks", "c", allow_public=True) if visible is None or visible(d)]
        full = get_all(call, "tasks", "tasks", data=dict(data), docs=docs, **TASK_QUERY)
        assert [r["id"] for r in fast["tasks"]] == [r["id"] for r in full["tasks"]], data
        served += data["order_by"][0] == "status_changed"
        doc = rng.choice(list(store.documents("tasks").values()))
        if round_ % 3 == 0:
            doc = dict(doc, status_changed=rng.choice(["2024-01-02T02:30:00+00:00", None, ""]))
            store.save("tasks", doc)
        elif round_ % 7 == 0:
            store.delete("tasks", doc["id"])
    assert served > 100
    index = store.ordered_index("tasks", "status_changed")
    assert index.usable and sorted(index._keys) == index._keys


def test_ordered_index_steps_aside_for_values_it_cannot_order(tmp_path):
    """A status_changed that is not a string (or a document changed without a save) takes the full path."""
    from clearml_assets.local_server.core.registry import Call
    from clearml_assets.local_server.services.tasks import TASK_QUERY
    from clearml_assets.local_server.store.queries import get_all

    store = _store_with_tasks(tmp_path, random.Random(7), 50)
    data = {"order_by": ["status_changed", "id"], "page": 0, "page_size": 10}
    call = Call("tasks.get_all", data, "c", "u", store)
    first = get_all(call, "tasks", "tasks", data=dict(data), **TASK_QUERY)["tasks"]
    doc = store.get("tasks", first[0]["id"])
    doc["status_changed"] = "2030-01-01T00:00:00+00:00"  # changed in place, not saved yet
    moved = get_all(call, "tasks", "tasks", data=dict(data), **TASK_QUERY)["tasks"]
    assert doc["id"] not in [r["id"] for r in moved]
    store.save("tasks", dict(doc, status_changed=12345))
    assert not store.ordered_index("tasks", "status_changed").usable
    assert get_all(call, "tasks", "tasks", data=dict(data), **TASK_QUERY)["tasks"]


def test_a_task_saved_while_the_index_is_first_built_is_in_it(tmp_path, monkeypatch):
    """A save between the index build's copy of the documents and its end reaches the index (on main it was lost:
    the save saw no built index, the build had copied the documents before it, and sensor pages never showed it)."""
    import threading

    from clearml_assets.local_server.store.ordered import OrderedIndex

    store = _store_with_tasks(tmp_path, random.Random(11), 20)
    copied, release = threading.Event(), threading.Event()
    build = OrderedIndex.build

    def slow_build(self, docs):
        docs = list(docs)
        copied.set()
        release.wait(60)
        build(self, docs)

    monkeypatch.setattr(OrderedIndex, "build", slow_build)
    builder = threading.Thread(target=lambda: store.ordered_index("tasks", "status_changed"))
    builder.start()
    assert copied.wait(60)
    new = dict(next(iter(store.documents("tasks").values())), id="saved-during-build")
    saver = threading.Thread(target=lambda: store.save("tasks", new))
    saver.start()
    saver.join(0.5)  # with the lock it waits for the build; either order must end with the task indexed
    release.set()
    builder.join(60)
    saver.join(60)
    assert "saved-during-build" in store.ordered_index("tasks", "status_changed")._by_id
