"""The one ``clearml`` resource every component of a code location binds."""

from __future__ import annotations

import os
import threading

import dagster as dg

from ..resource import ClearMLResource

_LOCK = threading.Lock()
_SHARED: dict[tuple[tuple[str, str], ...], ClearMLResource] = {}


def shared_clearml_resource() -> ClearMLResource:
    """``ClearMLResource.from_env()``, the same object for every component built under the same environment.

    Dagster merges the definitions of a project's components and refuses two different objects under one
    resource key, so the components share this one (accounts from ``CLEARML_*`` variables and ``.env``, as
    ``build_definitions`` has them).
    """
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("CLEARML_")))
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = ClearMLResource.from_env()
        return _SHARED[key]


def resource_defs(account: str | None) -> dg.Definitions:
    """The shared ``clearml`` resource, after checking that ``account`` (if given) is one of its accounts.

    Raises:
        ClearMLConfigError: The account is not configured (naming the variables that make it), so
            ``dg check defs`` fails on the component, not a run.
    """
    clearml = shared_clearml_resource()
    if account:
        clearml.choose_account(account)
    return dg.Definitions(resources={"clearml": clearml})
