"""Types every layer of the local server shares: the API call and endpoint registry, API errors, the response
encoder, constants, ids and timestamps. Nothing here imports another part of the server."""

from .clock import now_iso
from .errors import ApiError, bad_request, missing_field
from .ids import ids_of, new_id
from .registry import Call, Handler, RequestModel, endpoint, required

__all__ = ["ApiError", "Call", "Handler", "RequestModel", "bad_request", "endpoint", "ids_of", "missing_field",
           "new_id", "now_iso", "required"]
