"""``organization.*``: tags over the company's tasks and models, entity counts (clearml-server 1.9.2)."""

from __future__ import annotations

from .. import apimodels as req
from ..bll import project as project_bll
from ..core import Call, endpoint
from ..store.filters import filter_docs
from .models import MODEL_QUERY
from .projects import PROJECT_QUERY
from .tasks import TASK_QUERY

QUERIES = {"projects": ("projects", PROJECT_QUERY), "pipelines": ("projects", PROJECT_QUERY),
           "datasets": ("projects", PROJECT_QUERY), "tasks": ("tasks", TASK_QUERY),
           "models": ("models", MODEL_QUERY), "reports": ("tasks", TASK_QUERY)}


@endpoint("organization.get_tags", request_data_model=req.TagsRequest)
def get_tags(call: Call) -> dict:
    """Tags (and with ``include_system`` system tags) used by the company's tasks and models."""
    m: req.TagsRequest = call.model
    tags: set = set()
    system: set = set()
    for collection in ("models", "tasks"):
        found = project_bll.entity_tags(call, collection, None, True, m.filter)
        tags.update(found["tags"])
        system.update(found["system_tags"])
    return {"tags": sorted(tags), **({"system_tags": sorted(system)} if m.include_system else {})}


@endpoint("organization.get_entities_count", request_data_model=req.EntitiesCountRequest)
def get_entities_count(call: Call) -> dict:
    """How many entities match each given query (hidden projects/tasks left out unless ``search_hidden``)."""
    m: req.EntitiesCountRequest = call.model
    out = {}
    for field, (collection, spec) in QUERIES.items():
        query = getattr(m, field)
        if query is None:
            continue
        query = dict(query)
        if field == "reports":
            query.update(type="report", include_subprojects=True)
        docs = call.store.all(collection, call.company, allow_public=m.allow_public)
        if m.active_users:
            if collection == "projects":
                active = project_bll.active_user_projects(call, query.get("id") or [], m.active_users)
                docs = [d for d in docs if d["id"] in active]
            elif not query.get("user"):
                query["user"] = m.active_users
        if collection in ("projects", "tasks") and field != "reports" and not m.search_hidden:
            docs = [d for d in docs if "hidden" not in (d.get("system_tags") or [])]
        if collection != "projects":
            query = project_bll.with_subprojects(call, query)
        out[field] = len(filter_docs(docs, query, released=call.store.lock.released, **spec))
    return out


@endpoint("organization.get_user_companies", min_version="2.12")
def get_user_companies(call: Call) -> dict:
    """The caller's company (its id as its name) with its users, by name."""
    users = sorted(({"id": u["id"], "name": u.get("name") or u["id"], "avatar": u.get("avatar")}
                    for u in call.store.all("users", call.company)), key=lambda u: u["name"])
    return {"companies": [{"id": call.company, "name": call.company, "allocated": len(users), "owners": users}]}
