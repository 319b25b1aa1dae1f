"""``server.info``: what this server is."""

from ..auth import API_VERSION, SERVER_VERSION
from ..registry import Call, endpoint


@endpoint("server.info")
def info(call: Call) -> dict:
    """Version facts, in the real server's field names."""
    return {"version": SERVER_VERSION, "build": "local", "commit": "", "api_version": API_VERSION,
            "uid": "clearml-assets-local-server"}
