"""Charts of the web view: ClearML's stored Plotly JSON and scalar series as Plotly figures, drawn with the
``plotly`` package's own ``plotly.min.js`` (no CDN)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

def plotly_js_path() -> Path | None:
    """``plotly.min.js`` as shipped in the ``plotly`` package (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _figure_json(figure: dict) -> str:
    try:
        text = json.dumps(figure, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # NaN/inf: JSON.parse refuses them, Plotly draws null as a gap
        text = json.dumps(_finite(figure), separators=(",", ":"), allow_nan=False, default=str)
    # inside <script type="application/json">: no "<" at all, so nothing can end the element early
    return text.replace("<", "\\u003c")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def scalar_figures(series: dict, names: dict[str, str] | None = None) -> list[dict]:
    """One chart per metric, a line per variant (per task and variant when comparing)."""
    figures = []
    for metric in sorted(series):
        traces = []
        for key, data in sorted(series[metric].items()):
            traces.append({"type": "scatter", "mode": "lines", "name": (names or {}).get(key, key),
                           "x": data.get("x", []), "y": data.get("y", [])})
        figures.append({"title": metric, "json": _figure_json(
            {"data": traces, "layout": {"title": {"text": metric}, "xaxis": {"title": {"text": "iteration"}},
                                        "showlegend": True}})})
    return figures


def plot_figures(plots: list[dict]) -> list[dict]:
    """One chart per stored plot, titled ``metric / variant`` (above the chart, and in the figure when the
    reported one has no title); a plot the server did not inflate, or whose JSON is broken, is its message."""
    figures = []
    for event in sorted(plots, key=lambda e: (str(e.get("metric")), str(e.get("variant")))):
        title = f"{event.get('metric')} / {event.get('variant')}"
        if event.get("plot_error"):
            figures.append({"title": title, "error": event["plot_error"]})
            continue
        try:
            fig = json.loads(event.get("plot_str") or "{}")
        except ValueError:
            figures.append({"title": title, "error": "the reported plot is not valid JSON"})
            continue
        layout = _titles_as_objects(dict(fig.get("layout") or {}))
        if not _title_text(layout.get("title")):
            layout["title"] = {"text": title}
        figures.append({"title": title, "json": _figure_json({"data": fig.get("data") or [], "layout": layout})})
    return figures


def _titles_as_objects(layout: dict) -> dict:
    """``layout`` with its string titles (the SDK writes ``"title": "<series>"``, also on axes) as
    ``{"text": ...}``: plotly.js 3 draws only that form."""
    if isinstance(layout.get("title"), str):
        layout["title"] = {"text": layout["title"]}
    for key, value in list(layout.items()):
        if key.startswith(("xaxis", "yaxis")) and isinstance(value, dict) and isinstance(value.get("title"), str):
            layout[key] = {**value, "title": {"text": value["title"]}}
    return layout


def _title_text(title: Any) -> str:
    """The text of a Plotly layout title (a string, or ``{"text": ...}``)."""
    return str((title.get("text") if isinstance(title, dict) else title) or "").strip()
