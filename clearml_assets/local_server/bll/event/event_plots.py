"""Plot reads (clearml-server ``bll/event/event_bll.py`` ``get_task_plots``, ``get_multi_task_plots``): the
latest plots of each metric/variant, compressed plots inflated."""

from __future__ import annotations

import itertools
import json
import sqlite3
from operator import itemgetter
from typing import Any, Iterable

from ...core import Call
from ...store.event_rows import metric_clause
from ...store.plots import PlotBudget
from .event_common import (EMPTY_SCROLL, MAX_METRICS, MAX_VARIANTS, decode_scroll, encode_scroll, metric_variants,
                           scrolled, target, targets)


def _plot_events(rows: Iterable[tuple]) -> list[dict]:
    budget = PlotBudget()
    return [budget.uncompress(json.loads(r[0])) for r in rows]


VALID_PLOT = "(json_extract(body, '$.valid_plot') IS NULL OR json_extract(body, '$.valid_plot') = 1)"


def get_task_plots(call: Call, task_id: str, iters: int, metrics: Any, model_events: bool) -> dict:
    """The ``iters`` latest plots of each metric/variant (100 metrics, 100 // iters variants each)."""
    _, company = target(call, task_id, model_events)
    mclause, margs = metric_clause(metric_variants(metrics))
    max_variants = max(1, MAX_VARIANTS // max(iters, 1))
    rows = call.store.reader().execute(
        f"SELECT body FROM (SELECT body, metric, variant, iter, seq, "
        f"ROW_NUMBER() OVER (PARTITION BY metric, variant ORDER BY iter DESC, seq) AS n, "
        f"DENSE_RANK() OVER (ORDER BY metric) AS m, DENSE_RANK() OVER (PARTITION BY metric ORDER BY variant) AS v "
        f"FROM events WHERE company=? AND task=? AND type='plot' AND {VALID_PLOT}{mclause}) "
        f"WHERE n <= ? AND m <= ? AND v <= ? ORDER BY metric, variant, iter DESC, seq",
        [company, task_id, *margs, iters, MAX_METRICS, max_variants]).fetchall()
    events = _plot_events(rows)
    return {"plots": events, "returned": len(events), "total": len(events), "scroll_id": None}


def get_multi_task_plots(call: Call, task_ids: list[str], iters: int, scroll_id: str | None, no_scroll: bool,
                         model_events: bool, per_metric: bool = False, metrics: Any = None) -> dict:
    """Plots of the last ``iters`` iterations of each task (the first 10 tasks Elasticsearch buckets), 500 a
    page of an Elasticsearch scroll, as ``{metric: {variant: {task: {iter: {name, plots}}}}}``.

    ``per_metric`` (API 2.26 ``last_iters_per_task_metric``): the last iterations of each task's metric."""
    if isinstance(task_ids, str):
        task_ids = [task_ids]
    docs = targets(call, list(task_ids), model_events)
    names = {t: doc.get("name") for t, (doc, _) in docs.items()}
    companies = sorted({c for _, c in docs.values()})
    if scroll_id == EMPTY_SCROLL:
        return {"plots": {}, "returned": 0, "total": 0, "scroll_id": None}
    state = decode_scroll(scroll_id) if scroll_id else {}
    conn = call.store.reader()
    if scroll_id:
        where, args = state["where"], state["args"]
    else:
        marks = ",".join("?" * len(companies))
        mclause, margs = metric_clause(metric_variants(metrics))
        base = f"company IN ({marks}) AND type='plot' AND task IN ({','.join('?' * len(docs))}){mclause}"
        base_args = [*companies, *docs, *margs]
        if model_events:
            where, args = base, base_args
        elif per_metric:
            last_pm = _last_iters_per_metric(conn, base, base_args, iters, len(docs))
            if not last_pm:
                return {"plots": {}, "returned": 0, "total": 0, "scroll_id": None}
            where = base + " AND (" + " OR ".join(
                f"(task=? AND metric=? AND iter IN ({','.join('?' * len(its))}))" for its in last_pm.values()) + ")"
            args = base_args + [v for (t, mt), its in last_pm.items() for v in (t, mt, *its)]
        else:
            last = _last_iters(conn, base, base_args, iters)
            if not last:
                return {"plots": {}, "returned": 0, "total": 0, "scroll_id": None}
            where = base + " AND (" + " OR ".join(
                f"(task=? AND iter IN ({','.join('?' * len(its))}))" for its in last.values()) + ")"
            args = base_args + [v for t, its in last.items() for v in (t, *its)]
    rows, total, next_scroll = scrolled(call, where, args, scroll_id, no_scroll)
    if next_scroll not in (None, EMPTY_SCROLL):
        next_scroll = encode_scroll({**decode_scroll(next_scroll), "where": where, "args": args})
    grouped = top_iter_unique_events_per_task(_plot_events(rows), iters, names)
    return {"plots": grouped, "returned": len(grouped), "total": total, "scroll_id": next_scroll}


def _last_iters(conn: sqlite3.Connection, where: str, args: list, iters: int) -> dict[str, list[int]]:
    """The real ``get_last_iters``: the ``iters`` highest iterations of each task (10 task buckets, by count)."""
    tasks = [r[0] for r in conn.execute(f"SELECT task FROM events WHERE {where} GROUP BY task "
                                        "ORDER BY COUNT(*) DESC, task LIMIT 10", args)]
    return {t: [r[0] for r in conn.execute(f"SELECT DISTINCT iter FROM events WHERE {where} AND task=? "
                                           "AND iter IS NOT NULL ORDER BY iter DESC LIMIT ?", [*args, t, iters])]
            for t in tasks}


def _last_iters_per_metric(conn: sqlite3.Connection, where: str, args: list, iters: int,
                           tasks: int) -> dict[tuple[str, str], list[int]]:
    """The later server's ``get_last_iters_per_metric``: the ``iters`` highest iterations of each task metric."""
    max_metrics = max(1, 10_000 // (min(tasks, 1000) * max(iters, 1)))
    out: dict[tuple[str, str], list[int]] = {}
    for task, metric in conn.execute(
            f"SELECT task, metric FROM (SELECT task, metric, ROW_NUMBER() OVER (PARTITION BY task ORDER BY COUNT(*) "
            f"DESC, metric) n FROM events WHERE {where} GROUP BY task, metric) WHERE n <= ?", [*args, max_metrics]):
        out[(task, metric)] = [r[0] for r in conn.execute(
            f"SELECT DISTINCT iter FROM events WHERE {where} AND task=? AND metric=? AND iter IS NOT NULL "
            "ORDER BY iter DESC LIMIT ?", [*args, task, metric, iters])]
    return {k: v for k, v in out.items() if v}


def top_iter_unique_events_per_task(events: list[dict], max_iters: int, names: dict[str, str]) -> dict:
    """The real ``_get_top_iter_unique_events_per_task``."""
    key = itemgetter("metric", "variant", "task", "iter")
    unique = itertools.chain.from_iterable(
        itertools.islice(group, max_iters) for _, group in itertools.groupby(sorted(events, key=key, reverse=True),
                                                                             key=key))

    def collect(evs: Iterable[dict], fields: tuple) -> dict:
        if not fields:
            evs = list(evs)
            return {"name": names.get(evs[0].get("task")), "plots": evs}
        return {str(k): collect(group, fields[1:]) for k, group in itertools.groupby(evs, key=itemgetter(fields[0]))}

    fields = ("metric", "variant", "task", "iter")
    return collect(sorted(unique, key=itemgetter(*fields), reverse=True), fields)
