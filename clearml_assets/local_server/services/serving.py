"""``serving.*`` read calls (API 2.31): the web app's Model Endpoints pages list the model-serving containers that
report to the server. The local server takes no such reports (``serving.register_container`` and the status reports
are not served), so it has none to list, and says so as the real server with no container would."""

from __future__ import annotations

from ..core import Call, endpoint


@endpoint("serving.get_endpoints", min_version="2.31")
def get_endpoints(call: Call) -> dict:
    """No model endpoint is registered."""
    return {"endpoints": []}


@endpoint("serving.get_loading_instances", min_version="2.31")
def get_loading_instances(call: Call) -> dict:
    """No serving container is loading a model."""
    return {"instances": []}
