"""Endpoint registry and API errors for the local ClearML-compatible server.

Handlers are plain synchronous functions ``handler(call: Call) -> dict`` registered with
:func:`endpoint`. The returned dict becomes the ``data`` of the ClearML response envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .store import Store


class ApiError(Exception):
    """An error returned to the client in the ClearML envelope.

    Codes and subcodes follow the real server's ``apierrors/errors.conf``
    (e.g. 400/101 invalid task id, 401/30 invalid token, 404/0 unknown endpoint).
    """

    def __init__(self, code: int, subcode: int, msg: str, data: dict | None = None):
        super().__init__(msg)
        self.code = code
        self.subcode = subcode
        self.msg = msg
        self.data = data or {}


def bad_request(msg: str, subcode: int = 12) -> ApiError:
    """A 400 validation error (subcode 12 ``validation_error`` unless given)."""
    return ApiError(400, subcode, msg)


def missing_field(name: str) -> ApiError:
    """A 400/11 ``missing_required_fields`` error naming the field."""
    return ApiError(400, 11, f"Validation error (missing required fields): {name}")


@dataclass
class Call:
    """One API call as a handler sees it."""

    endpoint: str
    data: dict[str, Any]
    company: str
    user: str
    store: "Store"
    requested_version: str = "2.23"
    extra: dict[str, Any] = field(default_factory=dict)

    def require(self, name: str) -> Any:
        """Return a required request field or raise ``missing_required_fields``."""
        value = self.data.get(name)
        if value is None:
            raise missing_field(name)
        return value


Handler = Callable[[Call], dict]

ENDPOINTS: dict[str, Handler] = {}
UNAUTHENTICATED: set[str] = set()


def endpoint(name: str, authorize: bool = True) -> Callable[[Handler], Handler]:
    """Register ``name`` (``service.action``) to the decorated handler."""

    def register(func: Handler) -> Handler:
        ENDPOINTS[name] = func
        if not authorize:
            UNAUTHENTICATED.add(name)
        return func

    return register
