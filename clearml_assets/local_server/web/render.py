"""Rendering the web view's pages: the Jinja2 environment (autoescaped), its filters, dates."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from jinja2 import DictLoader, Environment, select_autoescape
from starlette.responses import HTMLResponse

from . import templates

_env = Environment(loader=DictLoader(templates.ALL), autoescape=select_autoescape(default=True,
                                                                                  default_for_string=True))


def http_only(uri: Any) -> str:
    """A stored URI as a link target only if it is http(s): a task may hold ``javascript:`` or worse."""
    uri = str(uri or "")
    return uri if urlsplit(uri).scheme in ("http", "https") else ""


_env.filters["http_only"] = http_only


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``template``, never cached (``signed_in`` in ``context`` defaults to True)."""
    html = _env.get_template(template).render(fmt=_fmt, signed_in=context.pop("signed_in", True), **context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def when(value: Any) -> str:
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
        except ValueError:
            return value
    return ""
