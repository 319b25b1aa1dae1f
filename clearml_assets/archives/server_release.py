"""What the clearml-server release of an account changes for archives: recorded at export, checked at restore.

A server says its release and API version in its login token (``server_version``, ``api_version``; the SDK reads
the same claims). An export records both in ``task.json`` (``server``), so an archive says what wrote it. The one
difference a restore has to respect: servers up to 1.9.2 (API 2.23) store every model event at iteration 0, the
newer ones keep the event's iteration (a model's scalars over its training).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

LAST_API_WITHOUT_MODEL_ITERATIONS = (2, 23)
"""The newest API version whose server stores model events at iteration 0 (clearml-server 1.9.2)."""


def api_tuple(version: Any) -> tuple[int, ...] | None:
    """``"2.34"`` -> ``(2, 34)``; None when there is no version to read."""
    numbers = re.findall(r"\d+", str(version or ""))
    return tuple(int(n) for n in numbers[:3]) if numbers else None


def server_facts(client) -> dict[str, Any]:
    """``{"version", "api_version"}`` of the account's server as its token says (None each when it does not)."""
    session = getattr(client, "session", None)
    return {"version": getattr(session, "server_version", None), "api_version": getattr(session, "api_version", None)}


def keeps_model_event_iterations(api_version: Any) -> bool:
    """Whether a server of ``api_version`` keeps a model event's iteration (unknown: assumed it does)."""
    api = api_tuple(api_version)
    return api is None or api > LAST_API_WITHOUT_MODEL_ITERATIONS


def collapsed_iterations_note(client, iterations: Iterable[Any]) -> str | None:
    """What a restore says when the target stores the model events of ``iterations`` at iteration 0; None when
    the target keeps them (or every event already is at iteration 0)."""
    facts = server_facts(client)
    if keeps_model_event_iterations(facts["api_version"]):
        return None
    moved = sorted({int(i) for i in iterations if i not in (None, 0)})
    if not moved:
        return None
    return (f"the target server (clearml-server {facts['version'] or '?'}, API {facts['api_version']}) stores model "
            f"events at iteration 0: the events of iterations {moved[0]}..{moved[-1]} ({len(moved)} iterations) are "
            "stored there, the last of each metric wins")
