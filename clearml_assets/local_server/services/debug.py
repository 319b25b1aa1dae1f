"""``debug.*``: unauthenticated ping, as on the real server."""

from ..core import Call, endpoint


@endpoint("debug.ping", authorize=False)
def ping(call: Call) -> dict:
    """Answer ``{"msg": "ClearML server"}`` plus whatever was sent."""
    return {"msg": "ClearML server", **(call.data if isinstance(call.data, dict) else {})}
