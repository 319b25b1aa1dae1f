"""``server.info``: what this server is."""

from ..core import Call, endpoint
from ..core.constants import API_VERSION, SERVER_VERSION


@endpoint("server.info")
def info(call: Call) -> dict:
    """Version facts, in the real server's field names."""
    return {"version": SERVER_VERSION, "build": "local", "commit": "", "api_version": API_VERSION,
            "uid": "clearml-assets-local-server"}
