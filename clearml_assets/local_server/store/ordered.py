"""Ordered indexes of the local server's documents: a ``*.get_all`` page in O(page) instead of O(documents).

The completed-task sensor asks ``tasks.get_all`` for ``status_changed >= <cursor>`` ordered by
``status_changed, id``, a page of 500 at a time. Filtering and sorting every one of 100,000 tasks for each page
made a tick take seconds; an index kept in the order :func:`.ordering.sort_docs` gives (non-empty strings by
value then id, then missing values, then empty strings, each by id) lets a page be read from the first
document the date bound allows until the page is full. The answer is the one the full path gives: the same
filters decide on each document, and any doubt (a value that is not a string, a document changed without
being saved, paging other than ``page``/``page_size``) takes the full path.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, Callable, Iterator

from .fields import get_path
from .filters import ACCESS_REGEX, _parse_time

#: Fields with an index, per collection (the first ``order_by`` field it serves).
INDEXED = {"tasks": ("status_changed",)}
_CHUNK = 512


def _key(value: Any, doc_id: str) -> tuple | None:
    """The index key of a document: its place in ``sort_docs`` order; None for a value it cannot order."""
    if isinstance(value, str):
        return (0, value, doc_id) if value else (2, "", doc_id)
    return (1, "", doc_id) if value is None else None


class OrderedIndex:
    """The documents of one collection in ``order_by [field, id]`` order, kept up to date by the store's saves.

    Args:
        field: The top-level field ordered by.
    """

    def __init__(self, field: str):
        self.field = field
        self._lock = threading.Lock()
        self._keys: list[tuple] = []
        self._by_id: dict[str, tuple | None] = {}
        self._odd = 0  # documents whose value is not a string or None: the index cannot order them
        self._monotonic = True  # non-empty values in string order are in time order (date bounds can bisect)
        self.built = False

    def build(self, docs: Iterator[dict]) -> None:
        """(Re)build from every document of the collection."""
        by_id = {str(d.get("id")): _key(d.get(self.field), str(d.get("id"))) for d in docs}
        keys = sorted(k for k in by_id.values() if k is not None)
        with self._lock:
            self._by_id, self._keys = by_id, keys
            self._odd = sum(1 for k in by_id.values() if k is None)
            self._monotonic = _in_time_order(k[1] for k in keys if k[0] == 0)
            self.built = True

    def update(self, doc: dict) -> None:
        """Place a saved document (new or changed)."""
        doc_id = str(doc.get("id"))
        key = _key(doc.get(self.field), doc_id)
        with self._lock:
            self._remove(doc_id)
            self._by_id[doc_id] = key
            if key is None:
                self._odd += 1
                return
            at = bisect.bisect_left(self._keys, key)
            self._keys.insert(at, key)
            if key[0] == 0 and self._monotonic:
                self._monotonic = _fits(self._keys, at)

    def discard(self, doc_id: str) -> None:
        """Forget a deleted document."""
        with self._lock:
            self._remove(str(doc_id))
            self._by_id.pop(str(doc_id), None)

    def _remove(self, doc_id: str) -> None:
        if doc_id not in self._by_id:
            return
        old = self._by_id[doc_id]
        if old is None:
            self._odd -= 1
            return
        at = bisect.bisect_left(self._keys, old)
        if at < len(self._keys) and self._keys[at] == old:
            del self._keys[at]

    @property
    def usable(self) -> bool:
        return self.built and not self._odd

    def start_after(self, bound: Any) -> tuple | None:
        """The smallest key a document matching ``field >= bound`` (a parsed datetime) can have; None: from the
        start (the values are not known to be in time order)."""
        if bound is None or not self._monotonic:
            return None
        with self._lock:
            end = bisect.bisect_left(self._keys, (1,))
            at = bisect.bisect_left(self._keys, bound, 0, end, key=lambda k: _parse_time(k[1]))
            return self._keys[at] if at < len(self._keys) else (3,)

    def chunk(self, after: tuple | None, first: bool, size: int) -> list[tuple]:
        """Up to ``size`` keys from ``after`` (included when ``first``), in order: a keyset read that stays
        right while other threads save documents."""
        with self._lock:
            if after is None:
                at = 0
            else:
                at = (bisect.bisect_left if first else bisect.bisect_right)(self._keys, after)
            return self._keys[at:at + size]


def _in_time_order(values: Iterator[str]) -> bool:
    last = None
    for value in values:
        when = _parse_time(value)
        if when is None or (last is not None and when < last):
            return False
        last = when
    return True


def _fits(keys: list[tuple], at: int) -> bool:
    """Whether the non-empty value at ``at`` keeps time order with its neighbours."""
    values = [k[1] for k in keys[max(0, at - 1):at + 2] if k[0] == 0]
    return _in_time_order(iter(values))


def lower_date_bound(spec: Any) -> Any:
    """The largest ``>=``/``>`` bound of a datetime filter (parsed), or None."""
    items = spec if isinstance(spec, list) else [spec]
    if any(item is not None and not isinstance(item, str) for item in items):
        return None  # the filter refuses it: the first document read raises that error, as on the full path
    bounds = []
    for item in items:
        match = ACCESS_REGEX.match(item) if isinstance(item, str) else None
        if match and match.group("prefix") in (">=", ">"):
            when = _parse_time(match.group("value"))
            if when is not None:
                bounds.append(when)
    return max(bounds) if bounds else None


def page_need(data: dict, max_page_size: int) -> int | None:
    """How many ordered matches a ``page``/``page_size`` request reads (None: another paging mode, or values the
    full path refuses with its own error)."""
    if "scroll_id" in data or data.get("start") is not None:
        return None
    page, size = data.get("page"), data.get("page_size")
    page = 0 if page is None else page
    size = max_page_size if size is None else size
    if not isinstance(page, int) or isinstance(page, bool) or page < 0:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        return None
    return (page + 1) * min(size, max_page_size)


def ordered_matches(index: OrderedIndex, docs: dict[str, dict], field: str, need: int, bound: Any,
                    keep: Callable[[dict], bool], matching: Callable[[list[dict]], list[dict]]) -> list[dict] | None:
    """The first ``need`` documents in index order that ``keep`` (owner, visibility) and ``matching`` (the
    request's filters, on a chunk) accept; None when a document's value is not what the index holds (changed
    without a save: the caller takes the full path)."""
    out: list[dict] = []
    after, first, size = index.start_after(bound), True, max(_CHUNK, need)
    while len(out) < need:
        keys = index.chunk(after, first, size)
        if not keys:
            break
        chunk = []
        for key in keys:
            doc = docs.get(key[2])
            if doc is None:
                continue
            if _key(get_path(doc, field), key[2]) != key:
                return None
            if keep(doc):
                chunk.append(doc)
        out.extend(matching(chunk))
        after, first, size = keys[-1], False, min(size * 2, 1 << 16)
    return out
