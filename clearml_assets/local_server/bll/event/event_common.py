"""What every ``events.*`` read shares (clearml-server ``bll/event``): the events' task or model and its company,
scroll ids (the real JWTs), the real ``EventsIterator`` paging by key, Elasticsearch's scrolls and limits, and the
switchable real-server bugs (:func:`quirk`)."""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from typing import Any, Iterable

import jwt

from ...core import ApiError, Call
from ...core.constants import LOCKED_STATUSES
from ...core.rawjson import RawJSON
from ...store.event_rows import count

QUIRKS_ENV = "CLEARML_LOCAL_SERVER_QUIRKS"
SCROLL_RESTART_AT_ITER0 = "scroll_restart_at_iter0"
SCROLL_KEY = "1234567890"  # services.events.events_retrieval.scroll_id_key (the real default)
EMPTY_SCROLL = "FFFF"
ES_TOTAL_CAP = 10_000  # Elasticsearch's track_total_hits: hits.total.value stops counting here
KEY_VALUE_REST = 10_000  # events of the last key value fetched with a page
MAX_EVENTS_PAGE = 10_000  # max_raw_scalars_size for get_task_events
MAX_RAW_SCALARS = 200_000  # max_raw_scalars_size for scalar_metrics_iter_raw
MAX_METRICS, MAX_VARIANTS = 100, 100  # events_retrieval.max_metrics_count / max_variants_count
MAX_SAMPLE_BUCKETS = 6000
MAX_AGGS_ELEMENTS = 50


def quirk(call: Call, name: str) -> bool:
    """Whether the real-server bug ``name`` is switched on for this server.

    On through the environment variable ``CLEARML_LOCAL_SERVER_QUIRKS`` (comma separated names, read on every
    request) or a ``quirks`` collection on the server's store.
    """
    names = {n.strip() for n in os.environ.get(QUIRKS_ENV, "").split(",") if n.strip()}
    names |= set(getattr(call.store, "quirks", None) or ())
    return name in names


def version_at_least(call: Call, version: str) -> bool:
    """Whether the request asks for API ``version`` or later (the real server picks endpoint versions so)."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in str(text).split("."))
        except ValueError:
            return (0,)
    return parse(call.requested_version) >= parse(version)


# -- scroll ids ---------------------------------------------------------------------------------------
def encode_scroll(state: dict) -> str:
    """The real ``Scroll.get_scroll_id``: a JWT of the state (signed with the real default key)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real key is shorter than PyJWT recommends
        return jwt.encode(state, SCROLL_KEY, algorithm="HS256")


def decode_scroll(scroll_id: Any) -> dict:
    """The state of a scroll id (400/1104 ``invalid_scroll_id`` when it is not one)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = jwt.decode(str(scroll_id), SCROLL_KEY, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise ApiError(400, 1104, f"Invalid scroll id: scroll_id={scroll_id}") from None
    return state


# -- targets --------------------------------------------------------------------------------------------
def target(call: Call, entity_id: Any, model_events: bool = False) -> tuple[dict, str]:
    """The task (or model) and the company its events live in; public ones (company "") are readable."""
    collection, code, what = ("models", 201, "model") if model_events else ("tasks", 101, "task")
    with call.store.lock:
        doc = call.store.get(collection, entity_id, call.company) if isinstance(entity_id, str) else None
        if doc is None and isinstance(entity_id, str) and call.company:
            doc = call.store.get(collection, entity_id, "")
    if doc is None:
        raise ApiError(400, code, f"Invalid {what} id: id={entity_id}")
    return dict(doc), doc.get("company", call.company)


def targets(call: Call, ids: list[str], model_events: bool = False) -> dict[str, tuple[dict, str]]:
    """Every one of ``ids`` (400 naming the invalid ones otherwise)."""
    found, invalid = {}, []
    for entity_id in dict.fromkeys(ids):
        try:
            found[entity_id] = target(call, entity_id, model_events)
        except ApiError:
            invalid.append(entity_id)
    if invalid:
        code, what = (201, "model") if model_events else (101, "task")
        raise ApiError(400, code, f"Invalid {what} id: company={call.company}, ids=({', '.join(map(str, invalid))})")
    return found


def check_updatable(call: Call, entity_id: str, allow_locked: bool, model: bool = False) -> None:
    """The real ``_validate_task_state``/``_validate_model_state`` (own company; not published)."""
    collection, code, what = ("models", 201, "model") if model else ("tasks", 101, "task")
    with call.store.lock:
        doc = call.store.get(collection, entity_id, call.company)
    locked = doc is not None and not allow_locked and (doc.get("ready") if model else doc.get("status") in LOCKED_STATUSES)
    if doc is None or locked:
        extra = f" (or {what} published)" if not allow_locked else ""
        raise ApiError(400, code, f"Invalid {what} id{extra}: company={call.company}, id={entity_id}")


def raw_array(bodies: Iterable[str]):
    """Stored event bodies spliced into the response as a JSON array (they are JSON already)."""
    return RawJSON("[" + ",".join(bodies) + "]")


def metric_variants(metrics: Any) -> Any:
    if not metrics:
        return None
    return [m.model_dump() if hasattr(m, "model_dump") else m for m in metrics]


# -- the real EventsIterator -------------------------------------------------------------------------------
def key_events(conn: sqlite3.Connection, where: str, args: list, key: str, batch: int, earlier: bool,
               after: Any, columns: str = "body") -> list[tuple]:
    """Rows ``(*columns, key, seq)`` of one page of the real ``EventsIterator._get_events``.

    ``batch`` rows sorted by ``key`` only (ties in insertion order of the direction, events without the key
    last), strictly after ``after`` (``search_after``; None starts at the end given by ``earlier``), plus the
    events sharing the last key value (at most 10,000 of them in all, in insertion order).
    """
    if batch <= 0:
        return []
    op, direction = ("<", "DESC") if earlier else (">", "ASC")
    select = f"SELECT {columns}, {key}, seq FROM events WHERE {where}"
    qargs = list(args)
    position = ""
    if after is not None:
        position = f" AND {key} {op} ?"
        qargs.append(after)
    # index order (key, seq) in one direction; events without the key after all others (+/- Long.MAX in ES)
    rows = conn.execute(f"{select} AND {key} IS NOT NULL{position} ORDER BY {key} {direction}, seq {direction} "
                        "LIMIT ?", qargs + [batch]).fetchall()
    if len(rows) < batch:
        rows += conn.execute(f"{select} AND {key} IS NULL ORDER BY seq LIMIT ?", list(args) + [batch - len(rows)]
                             ).fetchall()
    if not rows:
        return rows
    last = rows[-1][-2]
    if last is None or (key == "iter" and columns == "body" and "iter" not in json.loads(rows[-1][0])):
        raise ApiError(500, 0, f"'{key}'")  # the real events[-1][key.field] on an event without the key
    rest = conn.execute(f"SELECT {columns}, {key}, seq FROM events WHERE {where} AND {key} = ? ORDER BY seq LIMIT ?",
                        list(args) + [last, KEY_VALUE_REST]).fetchall()
    if len(rest) < 2:
        return rows
    present = {r[-1] for r in rows}
    return rows + [r for r in rest if r[-1] not in present]


def position(call: Call, value: Any) -> Any:
    """``from_key_value`` as the real iterator uses it: with the quirk on, 0 means "from the start"."""
    if value is not None and not value and quirk(call, SCROLL_RESTART_AT_ITER0):
        return None
    return value


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def scrolled(call: Call, where: str, args: list, scroll_id: str | None, no_scroll: bool,
              size: int = 500) -> tuple[list[tuple], int, str | None]:
    """One page of an Elasticsearch scroll sorted by iteration (newest first)."""
    conn = call.store.reader()
    after = None
    if scroll_id:
        state = decode_scroll(scroll_id)
        after = state.get("after")
    sql = f"SELECT body, iter, seq FROM events WHERE {where}"
    qargs = list(args)
    if after is not None:
        sql += " AND (iter < ? OR (iter = ? AND seq > ?))"
        qargs += [after[0], after[0], after[1]]
    rows = conn.execute(sql + " ORDER BY iter DESC, seq LIMIT ?", qargs + [min(size, 10_000)]).fetchall()
    total = min(count(conn, where, args), ES_TOTAL_CAP)
    if no_scroll:
        return rows, total, None
    if not rows:
        return rows, total, EMPTY_SCROLL
    return rows, total, encode_scroll({"after": [rows[-1][1], rows[-1][2]]})
