"""Endpoint handlers of the local server, one module per ClearML service."""

from . import auth, debug, events, models, projects, server, tasks  # noqa: F401
from . import queues, workers  # noqa: F401  (agents)
