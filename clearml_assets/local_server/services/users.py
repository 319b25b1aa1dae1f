"""``users.*``: the users behind the server's key pairs (each key pair acts as one user of its company)."""

from __future__ import annotations

from ..bll import project as project_bll
from ..bll.user import get_preferences as read_preferences
from ..bll.user import set_preferences as write_preferences
from ..core import ApiError, Call, endpoint
from ..store.queries import get_all

USER_QUERY = dict(list_fields=("id",), regex_fields=("name",))


@endpoint("users.get_current_user")
def get_current_user(call: Call) -> dict:
    """The calling user with its company's id and name."""
    doc = call.store.get("users", call.user, call.company)
    if doc is None:
        raise ApiError(400, 300, f"Invalid user id: failed loading user (id={call.user})")
    user = {**call.store.copy(doc), "company": {"id": call.company, "name": call.company}, "role": "user"}
    return {"user": user, "getting_started": None}


@endpoint("users.get_by_id", required_fields=("user",))
def get_by_id(call: Call) -> dict:
    """One user of the caller's company."""
    doc = call.store.get("users", call.data["user"], call.company)
    if doc is None:
        raise ApiError(400, 300, f"Invalid user id (id={call.data['user']})")
    return {"user": call.store.copy(doc)}


@endpoint("users.get_all")
def get_all_users(call: Call) -> dict:
    """The company's users, filtered like any get_all."""
    return get_all(call, "users", "users", docs=call.store.all("users", call.company), **USER_QUERY)


@endpoint("users.get_all_ex")
def get_all_ex(call: Call) -> dict:
    """As ``get_all``; ``active_in_projects`` keeps the users with tasks under those projects."""
    data = dict(call.data)
    projects = data.pop("active_in_projects", None)
    if projects is not None:
        scope = set(project_bll.ids_with_children(call, projects)) if projects else None
        active = {t.get("user") for t in call.store.all("tasks", call.company)
                  if scope is None or t.get("project") in scope}
        active.discard(None)
        if data.get("id"):
            active &= set(data["id"] if isinstance(data["id"], list) else [data["id"]])
        if not active:
            return {"users": []}
        data["id"] = sorted(active)
    return get_all(call, "users", "users", docs=call.store.all("users", call.company), data=data, expand=False,
                   **USER_QUERY)


@endpoint("users.get_preferences")
def get_preferences(call: Call) -> dict:
    """The calling user's preferences (the web app's settings)."""
    return {"preferences": read_preferences(call)}


@endpoint("users.set_preferences", required_fields=("preferences",))
def set_preferences(call: Call) -> dict:
    """Merge the request's preferences into the calling user's (see :func:`..bll.user.set_preferences`)."""
    changes = call.data["preferences"]
    if not isinstance(changes, dict):
        raise ApiError(400, 12, "Validation error (invalid value for preferences): an object is expected")
    updated, preferences = write_preferences(call, changes)
    return {"updated": updated, "fields": {"preferences": preferences} if updated and call.data.get(
        "return_updated", True) else {}}
