"""Endpoint handlers of the local server, one module per ClearML service."""

from . import auth, debug, events, models, organization, projects, queues, server, tasks, users, workers  # noqa: F401
