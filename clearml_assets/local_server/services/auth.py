"""``auth.*``: ``auth.login`` is answered by the app itself (it needs the Basic header)."""

from ..core import Call, endpoint


@endpoint("auth.login", authorize=False)
def login(call: Call) -> dict:  # pragma: no cover - dispatched in app.handle
    """Placeholder so the registry lists the endpoint."""
    raise AssertionError("auth.login is handled by the application")
