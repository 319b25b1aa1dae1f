"""Endpoint handlers of the local server, one module per ClearML service."""

from . import auth, debug, events, models, organization, projects, server, tasks, users  # noqa: F401
