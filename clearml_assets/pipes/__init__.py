"""Dagster Pipes for ClearML: run a script as a ClearML task, on an agent queue or locally, and get its
logs, materialization metadata and asset checks back in Dagster while it runs.

Dagster side: :class:`PipesClearMLClient`. Script side (needs only ``dagster-pipes`` and ``clearml``):
:func:`open_clearml_pipes`. A local agent for try-outs and tests: :func:`start_local_agent`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports
from .protocol import PipesClearMLMessageWriter, PipesClearMLParamsLoader, open_clearml_pipes

if TYPE_CHECKING:
    from .agent import LocalAgent, start_local_agent
    from .client import ClearMLTaskFailure, PipesClearMLClient, PipesClearMLMessageReader

# The script side imports this package without Dagster: the Dagster-side names load on first use.
_LAZY = {"PipesClearMLClient": ".client", "PipesClearMLMessageReader": ".client", "ClearMLTaskFailure": ".client",
         "start_local_agent": ".agent", "LocalAgent": ".agent"}

__all__ = ["PipesClearMLClient", "PipesClearMLMessageReader", "ClearMLTaskFailure", "open_clearml_pipes",
           "PipesClearMLMessageWriter", "PipesClearMLParamsLoader", "start_local_agent", "LocalAgent"]

__getattr__ = lazy_exports(__name__, _LAZY)
