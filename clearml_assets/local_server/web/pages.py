"""The web view's pages: projects, tasks (one tab each), comparisons, models, datasets."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from .data import ReadApi, main_metrics
from .figures import plot_figures, scalar_figures
from .render import render, when

TASK_TABS = [  # key, label, URL path under /projects/<pid>/experiments/<tid>/
    ("overview", "Configuration", "output/execution"),
    ("log", "Console", "output/log"),
    ("scalars", "Scalars", "output/metrics/scalar"),
    ("plots", "Plots", "output/metrics/plots"),
    ("images", "Debug images", "output/debugImages"),
    ("artifacts", "Artifacts & models", "artifacts"),
]


def projects(request: Request, api: ReadApi) -> Response:
    """All projects with their task counts (dataset projects only when they hold tasks)."""
    rows = []
    tasks = api.tasks()
    for project in api.projects():
        own = [t for t in tasks if t.get("project") == project["id"]]
        if not own and str(project.get("name", "")).startswith(".datasets"):
            continue
        rows.append({**project, "task_count": len(own),
                     "last_update": when(max((t.get("last_update") or "" for t in own), default=""))})
    return render("projects", projects=rows)


def project_route(request: Request, api: ReadApi) -> Response:
    """``/projects/<pid>[/<rest>]``: a project, or a task, model or comparison under it."""
    return _project_page(request, api, request.path_params["pid"], request.path_params.get("rest", ""))


def _project_page(request: Request, api: ReadApi, project_id: str, rest: str) -> Response:
    """The page of ``rest`` under a project (the project's own page when ``rest`` names nothing else)."""
    for prefix in ("experiments/", "tasks/"):  # the SDK writes tasks/ links for servers of API 2.31 and later
        if rest.startswith(prefix):
            task_id, _, tab_path = rest[len(prefix):].partition("/")
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
        task["last_update"] = when(task.get("last_update"))
    columns = sorted({m for t in tasks for m in t["metrics"]}, key=_metric_rank)[:6]
    models = api("models.get_all_ex", project=[project_id], size=200, page=0).get("models", [])
    return render("project", project=project, tasks=tasks, metric_columns=columns, models=models)


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
    return render("task", task={**task, "started": when(task.get("started")),
                                 "completed": when(task.get("completed"))},
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
        context["figures"] = scalar_figures(api.scalars(task_id))
    elif tab == "plots":
        context["figures"] = plot_figures(api.plots(task_id))
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
    return render("compare", project=project, tasks=tasks, figures=scalar_figures(series, names))


# -- models ----------------------------------------------------------------------------------------
def models(request: Request, api: ReadApi) -> Response:
    """All models, newest first."""
    return render("models", models=api("models.get_all_ex", size=500, page=0,
                                        order_by=["-created"]).get("models", []))


def model_route(request: Request, api: ReadApi) -> Response:
    """``/models/<mid>``."""
    return _model_page(api, request.path_params["mid"])


def _model_page(api: ReadApi, model_id: str) -> Response:
    """A model's page: its design and metadata."""
    model = api.model(model_id)
    design = (model.get("design") or {}).get("design") if isinstance(model.get("design"), dict) else \
        model.get("design")
    metadata = list((model.get("metadata") or {}).values()) if isinstance(model.get("metadata"), dict) \
        else (model.get("metadata") or [])
    return render("model", model={**model, "created": when(model.get("created"))}, design=design,
                   metadata=metadata)


# -- datasets --------------------------------------------------------------------------------------
def datasets(request: Request, api: ReadApi) -> Response:
    """All dataset versions, by dataset and version."""
    rows = [_dataset_row(t) for t in api.tasks(system_tags=["dataset"]) if "dataset" in (t.get("system_tags") or [])]
    return render("datasets", datasets=sorted(rows, key=lambda r: (r["dataset"], r["version"])))


def dataset_route(request: Request, api: ReadApi) -> Response:
    """``/datasets/simple/<pid>[/experiments/<tid>]``: a dataset version (the project's first without a task)."""
    rest = request.path_params.get("rest", "")
    project_id = request.path_params["pid"]
    if not rest.startswith("experiments/"):
        versions = [_dataset_row(t) for t in api.tasks(project=[project_id])]
        if not versions:
            return render("error", status_code=404, title="Not found", message="No dataset versions here.")
        rest = f"experiments/{versions[0]['id']}"
    task_id = rest[len("experiments/"):].partition("/")[0]
    task = api.task(task_id)
    row = _dataset_row(task)
    runtime = task.get("runtime") or {}
    stats = [(k, runtime[k]) for k in sorted(runtime) if k.startswith("ds_") or k == "version"]
    versions = [_dataset_row(t) for t in api.tasks(project=[task.get("project")])]
    configuration = [(name, (c or {}).get("value", "")) for name, c in
                     sorted((task.get("configuration") or {}).items())]
    return render("dataset", task=task, name=row["dataset"], version=row["version"], stats=stats,
                   versions=versions, configuration=configuration)


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
