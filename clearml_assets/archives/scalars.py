"""Every scalar point of a task, streamed to ``scalars/scalars.parquet`` and ``scalars/scalars.jsonl``.

Points come from the task's scalar events (one metric at a time, all its variants, paged by iteration
with the scroll-restart recovery of :mod:`.events`; the server counts the total), with each point's
iteration, value and timestamp (``scalar_metrics_iter_raw`` returns no timestamps), never from the SDK's
``get_reported_scalars`` which averages down to ~2000 points per series. Memory stays flat: each page is
written as one parquet row group and appended to the JSON lines file, then dropped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .events import PagingReport, iter_task_events

SCALARS_DIR = "scalars"
PARQUET_NAME = "scalars.parquet"
JSONL_NAME = "scalars.jsonl"
METRICS_NAME = "metrics.json"
DEFAULT_BATCH = 10_000
SCALAR_EVENT = "training_stats_scalar"
_SCHEMA = pa.schema([("metric", pa.string()), ("variant", pa.string()), ("iter", pa.int64()),
                     ("value", pa.float64()), ("timestamp", pa.int64())])


@dataclass
class SeriesStats:
    """Running summary of one metric/variant series."""

    metric: str
    variant: str
    count: int = 0
    non_finite: int = 0
    first_iter: int | None = None
    last_iter: int | None = None
    last: float | None = None
    min: float | None = None
    max: float | None = None
    max_iter: int | None = None

    def add(self, iteration: int, value: float) -> None:
        self.count += 1
        if self.first_iter is None:
            self.first_iter = iteration
        if self.last_iter is None or iteration >= self.last_iter:
            self.last_iter, self.last = iteration, value
        if not math.isfinite(value):
            self.non_finite += 1
            return
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max, self.max_iter = value, iteration

    def add_many(self, iterations: list[int], values: list[float]) -> None:
        """The same as :meth:`add` for each point in order, done a page at a time."""
        n = len(iterations)
        if not n:
            return
        self.count += n
        if self.first_iter is None:
            self.first_iter = iterations[0]
        top = max(iterations)
        if self.last_iter is None or top >= self.last_iter:  # the last point of the highest iteration
            self.last_iter, self.last = top, values[n - 1 - iterations[::-1].index(top)]
        finite = values if _all_finite(values) else [v for v in values if math.isfinite(v)]
        self.non_finite += n - len(finite)
        if not finite:
            return
        low, high = min(finite), max(finite)  # the first of equal extremes, like add()
        if self.min is None or low < self.min:
            self.min = low
        if self.max is None or high > self.max:
            self.max, self.max_iter = high, iterations[values.index(high)]

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "variant": self.variant, "count": self.count,
                "non_finite": self.non_finite, "first_iter": self.first_iter, "last_iter": self.last_iter,
                "last": json_float(self.last), "min": self.min, "max": self.max, "max_iter": self.max_iter}


@dataclass
class ScalarsResult:
    """What :func:`export_scalars` wrote and what the server said it has."""

    points: int = 0
    server_total: int = 0
    series: dict[tuple[str, str], SeriesStats] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def json_float(value: float | None) -> float | str | None:
    """``value`` for strict JSON: ``NaN``/``Infinity``/``-Infinity`` become strings."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _all_finite(values: list[float]) -> bool:
    # a NaN or an infinity makes the sum non-finite; a false alarm (overflow) only costs the slow path
    try:
        return math.isfinite(sum(values))
    except OverflowError:
        return False


def to_floats(values: list[Any]) -> list[float]:
    """:func:`to_float` of every value (one C-level pass when they are all numbers)."""
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return [to_float(v) for v in values]


def to_float(value: Any) -> float:
    """A reported value as a float (``None`` and unparsable text become NaN)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def list_scalar_metrics(client, task_id: str) -> dict[str, list[str]]:
    """``{metric: [variant, ...]}`` from the server's scalar metrics listing."""
    out: dict[str, list[str]] = {}
    for metric, variants in client.events.scalar_metrics_and_variants(task_id).items():
        out[metric] = sorted(variants) if isinstance(variants, (list, dict)) else []
    return out


def export_scalars(client, task_id: str, folder: Path, batch_size: int = DEFAULT_BATCH) -> ScalarsResult:
    """Write every scalar point of ``task_id`` (iteration, value and timestamp) under ``folder/scalars/``.

    Args:
        client: A ``ClearMLClient``.
        task_id: The task.
        folder: The task's export folder.
        batch_size: Events per request (the real server's ``get_task_events`` serves up to 10,000).
    """
    result = ScalarsResult()
    out_dir = folder / SCALARS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = list_scalar_metrics(client, task_id)
    writer = pq.ParquetWriter(out_dir / PARQUET_NAME, _SCHEMA, compression="zstd")
    try:
        with open(out_dir / JSONL_NAME, "w", encoding="utf-8", newline="\n") as jsonl:
            for metric in sorted(metrics):
                _export_metric(client, task_id, metric, batch_size, writer, jsonl, result)
    finally:
        writer.close()
    return result


def _export_metric(client, task_id: str, metric: str, batch_size: int, writer: pq.ParquetWriter,
                   jsonl, result: ScalarsResult) -> None:
    report = PagingReport()
    jmetric = json.dumps(metric, ensure_ascii=False)
    got = 0
    for events in iter_task_events(client, task_id, SCALAR_EVENT, report, batch_size=batch_size,
                                   metrics=[{"metric": metric}]):
        by_variant: dict[str, tuple[list, list, list]] = {}
        for event in events:
            columns = by_variant.setdefault(str(event.get("variant", "")), ([], [], []))
            columns[0].append(int(event.get("iter") or 0))
            columns[1].append(event.get("value"))
            columns[2].append(event.get("timestamp"))
        tables = [_write_batch(metric, jmetric, variant, iters, to_floats(values), stamps, jsonl, result)
                  for variant, (iters, values, stamps) in sorted(by_variant.items())]
        if tables:  # one parquet row group per page
            writer.write_table(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
        got += len(events)
    result.points += got
    result.server_total += report.total if report.total is not None else got
    result.errors.extend({**issue, "metric": metric} for issue in report.issues)
    if report.total is not None and got != report.total:
        result.errors.append({"section": "scalars", "metric": metric,
                              "error": f"received {got} points, server counted {report.total}"})


def _write_batch(metric: str, jmetric: str, variant: str, iters: list[int], values: list[float],
                 stamps: list[Any], jsonl, result: ScalarsResult) -> pa.Table:
    """Append one variant's points of a page to the JSON lines and its summary; returns them as a table."""
    n = len(iters)
    stats = result.series.get((metric, variant))
    if stats is None:
        stats = result.series[(metric, variant)] = SeriesStats(metric, variant)
    stats.add_many(iters, values)
    prefix = f'{{"metric":{jmetric},"variant":{json.dumps(variant, ensure_ascii=False)},"iter":'
    if _all_finite(values):  # numbers hold no comma: one C-level encode each, then split
        texts = orjson.dumps(values).decode()[1:-1].split(",")
    else:
        texts = [repr(v) if math.isfinite(v) else json.dumps(json_float(v)) for v in values]
    try:
        keys = orjson.dumps(iters).decode()[1:-1].split(",")
        times = orjson.dumps(stamps).decode()[1:-1].split(",")
    except TypeError:  # an iteration past 64 bits (only a foreign server sends one)
        keys, times = [str(i) for i in iters], [json.dumps(t) for t in stamps]
    jsonl.write("".join([f'{prefix}{i},"value":{v},"timestamp":{t}}}\n' for i, v, t in zip(keys, texts, times)]))
    return pa.table({"metric": pa.repeat(pa.scalar(metric, pa.string()), n),
                     "variant": pa.repeat(pa.scalar(variant, pa.string()), n),
                     "iter": pa.array(iters, pa.int64()), "value": pa.array(values, pa.float64()),
                     "timestamp": pa.array([t if isinstance(t, int) else None for t in stamps], pa.int64())},
                    schema=_SCHEMA)


# The user's seed filters "mAP, Precision, Recall and F1-score"; YOLO reports e.g. val / metrics/mAP50(B).
PICKED_METRICS = ("mAP50", "mAP50-95", "precision", "recall", "F1")


def classify_series(label: str) -> str | None:
    """Which picked metric a series label (``metric/variant``) is, if any."""
    lower = label.lower()
    flat = re.sub(r"[^a-z0-9]", "", lower)
    if "map" in flat:
        if re.search(r"map(50|05|5)(95|095)", flat):
            return "mAP50-95"
        if re.search(r"map(50|05|5)(?![0-9])", flat):
            return "mAP50"
        return None
    if "precision" in flat:
        return "precision"
    if "recall" in flat:
        return "recall"
    if re.search(r"(^|[^a-z0-9])f1([^0-9]|$)", lower) or "f1score" in flat:
        return "F1"
    return None


def _series_rank(stats: SeriesStats) -> tuple:
    label = f"{stats.metric}/{stats.variant}".lower()
    return (
        "(b)" not in label and "box" not in label,   # box metrics before mask/pose ones
        stats.metric.lower() == "summary",            # time series before single values
        "train" in label,                             # validation before training
        label,
    )


def pick_metrics(series: list[SeriesStats]) -> dict[str, dict[str, Any]]:
    """The mAP50, mAP50-95, precision, recall and F1 of a task, picked from its scalar series.

    Each pick records the series it came from, its last and best (max) values. F1 is computed as
    ``2PR/(P+R)`` from the picked precision and recall (last values) when no F1 series was reported.
    """
    picks: dict[str, dict[str, Any]] = {}
    for name in PICKED_METRICS:
        candidates = [s for s in series if s.count and classify_series(f"{s.metric}/{s.variant}") == name]
        if not candidates:
            continue
        best = sorted(candidates, key=_series_rank)[0]
        picks[name] = {"series": f"{best.metric}/{best.variant}", "metric": best.metric,
                       "variant": best.variant, "last": json_float(best.last), "max": best.max,
                       "last_iter": best.last_iter, "source": "reported"}
    if "F1" not in picks and "precision" in picks and "recall" in picks:
        p, r = picks["precision"]["last"], picks["recall"]["last"]
        if isinstance(p, float | int) and isinstance(r, float | int) and p + r > 0:
            picks["F1"] = {"series": None, "last": 2 * p * r / (p + r), "max": None, "last_iter":
                           picks["precision"]["last_iter"], "source": "computed 2PR/(P+R)"}
    return picks


def write_metrics_summary(folder: Path, result: ScalarsResult) -> dict[str, Any]:
    """Write ``metrics.json`` (per series last/min/max and the picked metrics); returns its content."""
    series = [result.series[k] for k in sorted(result.series)]
    summary = {"series": [s.as_dict() for s in series], "picked": pick_metrics(series),
               "points": result.points}
    with open(folder / METRICS_NAME, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1, ensure_ascii=False, allow_nan=False)
    return summary
