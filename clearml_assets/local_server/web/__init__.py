"""A read-only web view of the local server, at the ClearML web app's URL paths.

So that every link the ClearML SDK and this project print opens a page: projects
(``/projects/<pid>/experiments``), tasks (``/projects/<pid>/experiments/<tid>/output/log``,
``.../output/metrics/scalar``, ``.../output/metrics/plots``, ``.../output/debugImages``, ``.../artifacts``,
``.../output/execution``), models (``/projects/<pid>/models/<mid>``) and datasets
(``/datasets/simple/<pid>/experiments/<tid>``). Pages need a key pair of the server: the sign-in page sets the
token in the ``clearml_token_basic`` cookie, the name the ClearML web app and fileserver use, which the
fileserver accepts for downloads. Plots are ClearML's stored Plotly JSON, drawn with the ``plotly`` package's
own ``plotly.min.js`` (no CDN).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote, urlsplit

from jinja2 import DictLoader, Environment, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..auth import TOKEN_LIFETIME_SEC, Authenticator
from ..registry import ApiError
from ..store import Store
from . import templates
from .data import ReadApi, main_metrics

TOKEN_COOKIE = "clearml_token_basic"
TASK_TABS = [  # key, label, URL path under /projects/<pid>/experiments/<tid>/
    ("overview", "Configuration", "output/execution"),
    ("log", "Console", "output/log"),
    ("scalars", "Scalars", "output/metrics/scalar"),
    ("plots", "Plots", "output/metrics/plots"),
    ("images", "Debug images", "output/debugImages"),
    ("artifacts", "Artifacts & models", "artifacts"),
]

_env = Environment(loader=DictLoader(templates.ALL), autoescape=select_autoescape(default=True,
                                                                                  default_for_string=True))


def _http_only(uri: Any) -> str:
    """A stored URI as a link target only if it is http(s): a task may hold ``javascript:`` or worse."""
    uri = str(uri or "")
    return uri if urlsplit(uri).scheme in ("http", "https") else ""


_env.filters["http_only"] = _http_only


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


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


def _scalar_figures(series: dict, names: dict[str, str] | None = None) -> list[dict]:
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


def _plot_figures(plots: list[dict]) -> list[dict]:
    figures = []
    for event in sorted(plots, key=lambda e: (str(e.get("metric")), str(e.get("variant")))):
        try:
            fig = json.loads(event.get("plot_str") or "{}")
        except ValueError:
            continue
        title = f"{event.get('metric')} / {event.get('variant')}"
        layout = dict(fig.get("layout") or {})
        layout.setdefault("title", {"text": title})
        figures.append({"title": title, "json": _figure_json({"data": fig.get("data") or [], "layout": layout})})
    return figures


def _when(value: Any) -> str:
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
        except ValueError:
            return value
    return ""


def build_web_app(store: Store, authenticator: Authenticator, info: Any) -> Starlette:
    """The web view of ``store``'s data, for the identities ``authenticator`` accepts.

    Args:
        store: The server's store (read only).
        authenticator: The server's authenticator (key pairs and token signing key).
        info: The server's ``LocalServerInfo`` (shown on the sign-in page: where the key pair is).
    """
    session = _Session(store, authenticator, info)
    page = session.page
    return Starlette(routes=[
        Route("/", _root), Route("/healthz", _healthz), Route("/static/plotly.min.js", _plotly_js),
        Route("/login", session.login, methods=["GET", "POST"]), Route("/logout", _logout),
        Route("/projects", page(_projects)), Route("/models", page(_models)), Route("/datasets", page(_datasets)),
        Route("/models/{mid}", page(_model_route)),
        Route("/projects/{pid}", page(_project_route)), Route("/projects/{pid}/{rest:path}", page(_project_route)),
        Route("/datasets/simple/{pid}", page(_dataset_route)),
        Route("/datasets/simple/{pid}/{rest:path}", page(_dataset_route)),
    ])


def _render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``template``, never cached (``signed_in`` in ``context`` defaults to True)."""
    html = _env.get_template(template).render(fmt=_fmt, signed_in=context.pop("signed_in", True), **context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


_PageHandler = Callable[[Request, ReadApi], Response]


@dataclass
class _Session:
    """Signing in and out, and the pages that need a signed-in identity.

    Attributes:
        store: The server's store (read only).
        authenticator: The server's authenticator.
        info: The server's ``LocalServerInfo``.
    """

    store: Store
    authenticator: Authenticator
    info: Any

    def page(self, handler: _PageHandler) -> Callable[[Request], Response]:
        """An endpoint running ``handler`` for the request's identity.

        Args:
            handler: The page, given the request and a read API of the identity's data.

        Returns:
            An endpoint that redirects to the sign-in page without a valid token and answers an
            ``ApiError`` of ``handler`` with an error page (404 for the server's 400).
        """
        def endpoint(request: Request) -> Response:
            token = request.cookies.get(TOKEN_COOKIE)
            header = request.headers.get("authorization") or (f"Bearer {token}" if token else None)
            try:
                identity = self.authenticator.identity(header)
            except ApiError:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            try:
                return handler(request, ReadApi(self.store, identity))
            except ApiError as exc:
                status = 404 if exc.code == 400 else exc.code
                return _render("error", status_code=status, title="Not found", message=exc.msg)
        return endpoint

    def login_page(self, request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
        """The sign-in form (with ``error`` shown when given)."""
        return _render("login", status_code=status_code, signed_in=False, error=error, data_dir=self.info.data_dir,
                       next=_safe_next(request.query_params.get("next", "/projects")))

    async def login(self, request: Request) -> Response:
        """``GET``: the sign-in form; ``POST``: check the key pair and set the token cookie."""
        if request.method == "GET":
            return self.login_page(request)
        form = await request.form()
        key, secret = str(form.get("access_key", "")).strip(), str(form.get("secret_key", "")).strip()
        basic = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        try:
            token = self.authenticator.login(basic)["token"]
        except ApiError:
            return self.login_page(request, "Unknown access key or wrong secret key.", 401)
        response = RedirectResponse(_safe_next(str(form.get("next", "/projects"))), status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, max_age=TOKEN_LIFETIME_SEC, httponly=True, samesite="lax",
                            path="/")
        return response


def _logout(request: Request) -> Response:
    """Drop the token cookie and go to the sign-in page."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


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


# -- projects, tasks, comparisons ----------------------------------------------------------------
def _projects(request: Request, api: ReadApi) -> Response:
    """All projects with their task counts (dataset projects only when they hold tasks)."""
    rows = []
    tasks = api.tasks()
    for project in api.projects():
        own = [t for t in tasks if t.get("project") == project["id"]]
        if not own and str(project.get("name", "")).startswith(".datasets"):
            continue
        rows.append({**project, "task_count": len(own),
                     "last_update": _when(max((t.get("last_update") or "" for t in own), default=""))})
    return _render("projects", projects=rows)


def _project_route(request: Request, api: ReadApi) -> Response:
    """``/projects/<pid>[/<rest>]``: a project, or a task, model or comparison under it."""
    return _project_page(request, api, request.path_params["pid"], request.path_params.get("rest", ""))


def _project_page(request: Request, api: ReadApi, project_id: str, rest: str) -> Response:
    """The page of ``rest`` under a project (the project's own page when ``rest`` names nothing else)."""
    if rest.startswith("experiments/"):
        task_id, _, tab_path = rest[len("experiments/"):].partition("/")
        return _task_page(api, project_id, task_id, tab_path)
    if rest.startswith("models/"):
        return _model_page(api, rest[len("models/"):].partition("/")[0])
    if rest.startswith("compare-experiments"):
        ids = request.query_params.getlist("ids")
        if ";ids=" in rest:  # the ClearML web app's form: compare-experiments;ids=a,b/scalars/graph
            ids += unquote(rest.split(";ids=", 1)[1].split("/", 1)[0]).split(",")
        return _compare_page(api, project_id, [i for i in dict.fromkeys(ids) if i])
    project = api.project(project_id)
    tasks = api.tasks(project=[project_id])
    for task in tasks:
        task["metrics"] = main_metrics(task)
        task["last_update"] = _when(task.get("last_update"))
    columns = sorted({m for t in tasks for m in t["metrics"]}, key=_metric_rank)[:6]
    models = api("models.get_all_ex", project=[project_id], size=200, page=0).get("models", [])
    return _render("project", project=project, tasks=tasks, metric_columns=columns, models=models)


def _task_and_project(api: ReadApi, project_id: str, task_id: str) -> tuple[dict, dict]:
    """A task and its project (the task's own project wins over the URL's)."""
    task = api.task(task_id)
    pid = task.get("project") or project_id
    project = api.project(pid) if pid and pid != "*" else {"id": "*", "name": "(no project)"}
    return task, project


def _task_page(api: ReadApi, project_id: str, task_id: str, tab_path: str) -> Response:
    """A task's page, on the tab its URL path names."""
    task, project = _task_and_project(api, project_id, task_id)
    tab = _tab_of(tab_path)
    context = _task_tab_context(api, task, task_id, tab)
    base = f"/projects/{project['id']}/experiments/{task['id']}"
    return _render("task", task={**task, "started": _when(task.get("started")),
                                 "completed": _when(task.get("completed"))},
                   project=project, tab=tab, tabs=TASK_TABS, base=base, **context)


def _task_tab_context(api: ReadApi, task: dict, task_id: str, tab: str) -> dict[str, Any]:
    """What the ``task`` template shows on ``tab`` (``figures`` always, empty on tabs without charts).

    Args:
        api: Read API of the signed-in identity.
        task: The task.
        task_id: Its id as in the URL.
        tab: A ``TASK_TABS`` key.

    Returns:
        The template context of the tab.
    """
    context: dict[str, Any] = {"figures": []}
    if tab == "overview":
        context["hyperparams"] = [
            (section, [(name, (p or {}).get("value", "")) for name, p in sorted((params or {}).items())])
            for section, params in sorted((task.get("hyperparams") or {}).items())]
        context["configuration"] = [(name, (c or {}).get("value", ""))
                                    for name, c in sorted((task.get("configuration") or {}).items())]
        context["single_values"] = api.single_values(task_id)
    elif tab == "log":
        log, total = api.log_lines(task_id)
        context.update(log=log, total=total, shown=len(log))
    elif tab == "scalars":
        context["figures"] = _scalar_figures(api.scalars(task_id))
    elif tab == "plots":
        context["figures"] = _plot_figures(api.plots(task_id))
    elif tab == "images":
        context["images"] = api.debug_images(task_id)
    elif tab == "artifacts":
        context["artifacts"] = ((task.get("execution") or {}).get("artifacts")) or []
        refs = [(role, m.get("model")) for role in ("input", "output")
                for m in ((task.get("models") or {}).get(role) or []) if m.get("model")]
        found = {m["id"]: m for m in api.models([mid for _, mid in refs])}
        context["models"] = [(role, found[mid]) for role, mid in refs if mid in found]
    return context


def _compare_page(api: ReadApi, project_id: str, ids: list[str]) -> Response:
    """The scalars of several tasks, one chart per metric with a line per task and variant."""
    project = api.project(project_id) if project_id != "*" else {"id": "*", "name": "(all projects)"}
    tasks = [api.task(i) for i in ids]
    series: dict[str, dict] = {}
    names = {}
    for task in tasks:
        for metric, variants in api.scalars(task["id"]).items():
            for variant, data in variants.items():
                key = f"{task['id']}:{variant}"
                names[key] = f"{task['name']} · {variant}"
                series.setdefault(metric, {})[key] = data
    return _render("compare", project=project, tasks=tasks, figures=_scalar_figures(series, names))


# -- models ----------------------------------------------------------------------------------------
def _models(request: Request, api: ReadApi) -> Response:
    """All models, newest first."""
    return _render("models", models=api("models.get_all_ex", size=500, page=0,
                                        order_by=["-created"]).get("models", []))


def _model_route(request: Request, api: ReadApi) -> Response:
    """``/models/<mid>``."""
    return _model_page(api, request.path_params["mid"])


def _model_page(api: ReadApi, model_id: str) -> Response:
    """A model's page: its design and metadata."""
    model = api.model(model_id)
    design = (model.get("design") or {}).get("design") if isinstance(model.get("design"), dict) else \
        model.get("design")
    metadata = list((model.get("metadata") or {}).values()) if isinstance(model.get("metadata"), dict) \
        else (model.get("metadata") or [])
    return _render("model", model={**model, "created": _when(model.get("created"))}, design=design,
                   metadata=metadata)


# -- datasets --------------------------------------------------------------------------------------
def _datasets(request: Request, api: ReadApi) -> Response:
    """All dataset versions, by dataset and version."""
    rows = [_dataset_row(t) for t in api.tasks(system_tags=["dataset"]) if "dataset" in (t.get("system_tags") or [])]
    return _render("datasets", datasets=sorted(rows, key=lambda r: (r["dataset"], r["version"])))


def _dataset_route(request: Request, api: ReadApi) -> Response:
    """``/datasets/simple/<pid>[/experiments/<tid>]``: a dataset version (the project's first without a task)."""
    rest = request.path_params.get("rest", "")
    project_id = request.path_params["pid"]
    if not rest.startswith("experiments/"):
        versions = [_dataset_row(t) for t in api.tasks(project=[project_id])]
        if not versions:
            return _render("error", status_code=404, title="Not found", message="No dataset versions here.")
        rest = f"experiments/{versions[0]['id']}"
    task_id = rest[len("experiments/"):].partition("/")[0]
    task = api.task(task_id)
    row = _dataset_row(task)
    runtime = task.get("runtime") or {}
    stats = [(k, runtime[k]) for k in sorted(runtime) if k.startswith("ds_") or k == "version"]
    versions = [_dataset_row(t) for t in api.tasks(project=[task.get("project")])]
    configuration = [(name, (c or {}).get("value", "")) for name, c in
                     sorted((task.get("configuration") or {}).items())]
    return _render("dataset", task=task, name=row["dataset"], version=row["version"], stats=stats,
                   versions=versions, configuration=configuration)


def _safe_next(target: str) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect through ``next``."""
    target = unquote(target) if target.startswith("%2F") else target
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/projects"
    return target


def _tab_of(path: str) -> str:
    path = path.strip("/")
    for key, _, tab_path in TASK_TABS:
        if path == tab_path or path.startswith(tab_path + "/"):
            return key
    if path.startswith("output/metrics/plot"):
        return "plots"
    if path.startswith("output/metrics"):
        return "scalars"
    if path.startswith("output/debug"):
        return "images"
    if path.startswith("artifacts"):
        return "artifacts"
    return "overview"  # execution, hyper-params, configuration, info-output, ...


def _metric_rank(name: str) -> tuple:
    preferred = ("mAP50-95", "mAP50(", "precision", "recall", "loss")
    return (next((i for i, p in enumerate(preferred) if p in name), len(preferred)), name)


def _dataset_row(task: dict) -> dict:
    runtime = task.get("runtime") or {}
    name = task.get("name") or ""
    return {"id": task.get("id"), "project": task.get("project"), "status": task.get("status"),
            "dataset": name, "version": runtime.get("version", ""), "runtime": runtime}
