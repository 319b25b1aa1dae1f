"""API errors of the local server: what a client gets back in the ClearML envelope."""

from __future__ import annotations


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
