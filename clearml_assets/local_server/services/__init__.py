"""Endpoint handlers of the local server, one module per ClearML service."""

from . import (auth, debug, events, events_iterators, models, organization, projects, queues, server,  # noqa: F401
               tasks, tasks_params, tasks_status, users, workers)
