"""Endpoint handlers of the local server, one module per ClearML service."""

from . import (auth, debug, events, events_iterators, login, models, organization, projects,  # noqa: F401
               pipelines, queues, reports, server, serving, tasks, tasks_params, tasks_status,
               users, workers)
