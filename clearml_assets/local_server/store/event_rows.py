"""SQL helpers for reading the events table: the metric/variant filter, counts, verbatim JSON fields."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..core import bad_request

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def metric_clause(metrics: Any) -> tuple[str, list]:
    """SQL for the real ``MetricVariants`` filter: ``[{metric, variants?}]`` or ``{metric: variants}``."""
    if not metrics:
        return "", []
    if isinstance(metrics, dict):
        metrics = [{"metric": m, "variants": v} for m, v in metrics.items()]
    parts, args = [], []
    for m in metrics:
        if not isinstance(m, dict) or not isinstance(m.get("metric"), str):
            raise bad_request("Validation error (metrics items need a metric string)")
        variants = m.get("variants") or []
        if variants:
            parts.append(f"(metric=? AND variant IN ({','.join('?' * len(variants))}))")
            args += [m["metric"], *variants]
        else:
            parts.append("metric=?")
            args.append(m["metric"])
    return " AND (" + " OR ".join(parts) + ")", args


_VERBATIM: dict[str, bool] = {}


def json_fields_verbatim(conn: sqlite3.Connection) -> bool:
    """Whether SQLite's ``body -> '$.field'`` returns a field's JSON text exactly as stored.

    Checked once on values this module writes (floats, big integers, escaped text); when it holds,
    scalar columns are read straight from the stored JSON instead of decoding every event.
    """
    version = sqlite3.sqlite_version
    if version not in _VERBATIM:
        samples = [0.12345678901234568, 1e-07, 1e+20, -0.0, 5e-324, 10 ** 30, -(2 ** 63), "\u00e9\ud800",
                   None, True, 3]
        try:
            ok = all(conn.execute("SELECT ? -> '$.v'", (_encode({"v": v}),)).fetchone()[0] == _encode(v)
                     for v in samples)
        except sqlite3.Error:  # no JSON operators in this SQLite
            ok = False
        _VERBATIM[version] = ok
    return _VERBATIM[version]


def count(conn: sqlite3.Connection, where: str, args: list) -> int:
    """The number of events matching ``where``."""
    return conn.execute(f"SELECT COUNT(*) FROM events WHERE {where}", args).fetchone()[0]
