"""Telling a server that pages forever from one that has many rows.

A server that ignores ``page`` answers the same rows for ever; one that keeps a broken cursor cycles through
a few pages; a scroll id that never advances returns the same events again. Each page's fingerprint (its
rows' ids, else its rows' bytes) is remembered for the whole listing, so any page seen before ends it with
an error instead of another call.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Iterator, Sequence

import orjson

#: The most rows a real clearml-server returns per ``get_all`` page; it cuts larger pages without an error.
MAX_PAGE_SIZE = 500
#: A real server's exact event totals stop here (Elasticsearch counts "10,000 or more").
EXACT_TOTAL_BELOW = 10_000


def page_fingerprint(rows: Sequence[Any]) -> bytes:
    """A digest of one page: its rows' ids when every row has one, else the rows themselves."""
    ids = [row.get("id") for row in rows if isinstance(row, dict)]
    if len(ids) == len(rows) and None not in ids:
        body = "\0".join(str(i) for i in ids).encode()
    else:
        body = orjson.dumps(rows, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(body, digest_size=16).digest()


class PageGuard:
    """Remembers the pages of one listing; :meth:`seen_at` says which earlier page a new one repeats.

    Args:
        repeats_allowed: Repeats tolerated before :meth:`check` reports one (an event scroll may restart
            once: clearml-server's iteration-0 quirk, which the exporter handles by reading newest-first).
    """

    def __init__(self, repeats_allowed: int = 0):
        self.pages = 0
        self.rows = 0
        self.total: int | None = None  # what the server counted, when it says
        self.repeats = 0
        self.repeats_allowed = repeats_allowed
        self._first_seen: dict[bytes, int] = {}

    def check(self, rows: Sequence[Any]) -> int | None:
        """Record a non-empty page; the number of the earlier page it repeats once more repeats than
        allowed were seen (None: go on)."""
        digest = page_fingerprint(rows)
        number = self.pages
        self.pages += 1
        self.rows += len(rows)
        earlier = self._first_seen.setdefault(digest, number)
        if earlier == number:
            return None
        self.repeats += 1
        return earlier if self.repeats > self.repeats_allowed else None


class ScrollGuards:
    """Page guards of event scrolls that the caller pages itself, keyed by the scroll id it passes back.

    A scroll starts with no scroll id; the guard then follows the ids each page returns. At most ``keep``
    scrolls are remembered (a caller that stops half-way leaves its guard behind).
    """

    def __init__(self, keep: int = 256):
        self._guards: OrderedDict[str, PageGuard] = OrderedDict()
        self._keep = keep

    def take(self, scroll_id: str | None) -> PageGuard:
        """The guard of the scroll ``scroll_id`` continues (a new one for a new scroll)."""
        guard = self._guards.pop(scroll_id, None) if scroll_id else None
        return guard or PageGuard(repeats_allowed=1)

    def keep(self, scroll_id: str | None, guard: PageGuard) -> None:
        """Remember ``guard`` for the next page of the scroll (``scroll_id``: the one the page returned)."""
        if not scroll_id:
            return
        self._guards[scroll_id] = guard
        while len(self._guards) > self._keep:
            self._guards.popitem(last=False)


def listing(session: Any, service: str, record: Any, only_fields: Sequence[str] | None,
            include_public: bool, page_size: int, filters: dict[str, Any]) -> Iterator[Any]:
    """Records of ``<service>.get_all`` paged to the end, public rows left out unless asked for.

    The real server's ``get_all`` always adds the public company's rows (``company: ""``); they are
    not the account's own, so listings drop them (an id asked for by the caller is kept).
    """
    if only_fields is not None:
        wanted = list(only_fields)
        filters["only_fields"] = wanted if include_public or "company" in wanted else [*wanted, "company"]
    for row in session.iter_pages(f"{service}.get_all", service, page_size=page_size, **filters):
        if include_public or row.get("company") != "" or "id" in filters:
            yield record.from_api(row)
