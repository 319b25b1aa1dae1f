"""A read-only web view of the local server, at the ClearML web app's URL paths.

So that every link the ClearML SDK and this project print opens a page: projects
(``/projects/<pid>/experiments``), tasks (``/projects/<pid>/experiments/<tid>/output/log``,
``.../output/metrics/scalar``, ``.../output/metrics/plots``, ``.../output/debugImages``, ``.../artifacts``,
``.../output/execution``), models (``/projects/<pid>/models/<mid>``) and datasets
(``/datasets/simple/<pid>/experiments/<tid>``). Pages need a key pair of the server: signing in starts a read-only
session kept on the server (its random id in an HttpOnly, SameSite cookie, no API token), which the fileserver
accepts for downloads and signing out ends. Plots are ClearML's stored Plotly JSON, drawn with the ``plotly`` package's
own ``plotly.min.js`` (no CDN).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..auth import Authenticator, ViewSessions
from ..store import Store
from . import pages
from .figures import plotly_js_path
from .session import Session


def build_web_app(store: Store, authenticator: Authenticator, sessions: ViewSessions | None = None) -> Starlette:
    """The web view of ``store``'s data, for the identities ``authenticator`` accepts.

    Args:
        store: The server's store (read only).
        authenticator: The server's authenticator (key pairs and token signing key).
        sessions: The web view's sessions (shared with the fileserver, which accepts them for downloads).
    """
    session = Session(store, authenticator, sessions if sessions is not None else ViewSessions())
    page = session.page
    return Starlette(routes=[
        Route("/", _root), Route("/healthz", _healthz), Route("/static/plotly.min.js", _plotly_js),
        Route("/login", session.login, methods=["GET", "POST"]), Route("/logout", session.logout, methods=["GET", "POST"]),
        Route("/projects", page(pages.projects)), Route("/models", page(pages.models)),
        Route("/datasets", page(pages.datasets)), Route("/models/{mid}", page(pages.model_route)),
        Route("/projects/{pid}", page(pages.project_route)),
        Route("/projects/{pid}/{rest:path}", page(pages.project_route)),
        Route("/datasets/simple/{pid}", page(pages.dataset_route)),
        Route("/datasets/simple/{pid}/{rest:path}", page(pages.dataset_route)),
    ])


def _root(request: Request) -> Response:
    """``/`` is the projects page."""
    return RedirectResponse("/projects", status_code=303)


def _healthz(request: Request) -> Response:
    """Liveness probe."""
    return PlainTextResponse("ok")


def _plotly_js(request: Request) -> Response:
    """The ``plotly`` package's ``plotly.min.js`` (404 when plotly is not installed)."""
    path = plotly_js_path()
    if path is None:
        return PlainTextResponse("plotly is not installed: pip install plotly", status_code=404)
    return FileResponse(path, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
