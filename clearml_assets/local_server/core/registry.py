"""Endpoint registry of the local ClearML-compatible server (clearml-server's ``service_repo``).

Handlers are plain synchronous functions ``handler(call: Call) -> dict`` registered with
:func:`endpoint`. The returned dict becomes the ``data`` of the ClearML response envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from .constants import API_VERSION
from .errors import ApiError, bad_request, missing_field
from .versions import NEWEST, ServerRelease, parse_version

__all__ = ["ApiError", "bad_request", "missing_field", "API_VERSION", "Call", "RequestModel", "Handler", "ENDPOINTS",
           "REQUEST_MODELS", "REQUIRED_FIELDS", "UNAUTHENTICATED", "OPTIONAL_AUTH", "UNLOCKED", "MIN_VERSIONS",
           "endpoint", "find_endpoint", "parse_request", "required"]


@dataclass
class Call:
    """One API call as a handler sees it."""

    endpoint: str
    data: dict[str, Any]
    company: str
    user: str
    store: Any
    """The server's :class:`~..store.Store` (typed loosely: the shared types sit below the store layer)."""
    requested_version: str = API_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    """The request parsed into the endpoint's ``request_data_model`` (None for endpoints without one)."""
    release: ServerRelease = NEWEST
    """The clearml-server release the server presents itself as (see :mod:`.versions`)."""

    @property
    def api_version(self) -> tuple[int, int]:
        """The API version the call gets: the one in its path, never beyond the release's newest (no or a bad
        version: the release's newest, as the real server)."""
        try:
            return self.release.effective(self.requested_version)
        except ValueError:
            return self.release.api

    def require(self, name: str) -> Any:
        """Return a required request field or raise ``missing_required_fields``."""
        value = self.data.get(name)
        if value is None:
            raise missing_field(name)
        return value


def required(call: Call, name: str) -> Any:
    """A field the endpoint's JSON schema requires: missing is the real server's 400/12 validation error.

    (Only endpoints registered with ``required_fields``, e.g. ``projects.create``, answer 400/11.)
    """
    value = call.data.get(name)
    if value is None:
        raise ApiError(400, 12, f"Validation error: data must contain ['{name}'] properties")
    return value


class RequestModel(BaseModel):
    """Base of the typed request models (clearml-server's ``request_data_model``): unknown fields are kept
    in ``model_extra`` rather than refused, as the real server's schema validation lets most through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


Handler = Callable[[Call], dict]

ENDPOINTS: dict[str, Handler] = {}
REQUEST_MODELS: dict[str, type[RequestModel]] = {}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {}
UNAUTHENTICATED: set[str] = set()
OPTIONAL_AUTH: set[str] = set()
"""Endpoints registered with ``authorize=None`` (the real schema's ``authorize: null``): answered without a token,
but a valid one given is the call's identity (``login.supported_modes`` says whether the caller is signed in)."""
MIN_VERSIONS: dict[str, tuple[int, int]] = {}
"""The API version each endpoint came with (``min_version``): a request for an older version, or a release whose
newest API is older, does not find it (404)."""
UNLOCKED: set[str] = set()
"""Endpoints registered with ``locked=False``: they manage their own concurrency (events) and run outside
the store's document lock; every other handler runs under it so read-modify-write sequences stay atomic."""


def endpoint(name: str, authorize: bool | None = True, request_data_model: type[RequestModel] | None = None,
             *, locked: bool = True, required_fields: tuple[str, ...] = (), min_version: str = "1.0"
             ) -> Callable[[Handler], Handler]:
    """Register ``name`` (``service.action``) to the decorated handler.

    Args:
        name: ``service.action``.
        authorize: False for the few calls answered without a token (``debug.ping``, ``auth.login``); None for
            those answered either way (the token, when valid, is the call's identity).
        request_data_model: The body is validated into it before the handler runs and handed over as
            ``call.model``; a bad or missing field is the real server's 400/12 validation error.
        locked: False runs the handler outside the store's document lock (it must lock what it touches).
        required_fields: As the real ``@endpoint(required_fields=...)``: these missing are 400/11
            (missing required fields) instead of 400/12.
        min_version: The API version the endpoint came with (the real schema's first version of it).
    """

    def register(func: Handler) -> Handler:
        ENDPOINTS[name] = func
        MIN_VERSIONS[name] = parse_version(min_version)
        if request_data_model is not None:
            REQUEST_MODELS[name] = request_data_model
        if required_fields:
            REQUIRED_FIELDS[name] = tuple(required_fields)
        if authorize is None:
            OPTIONAL_AUTH.add(name)
        if not authorize:
            UNAUTHENTICATED.add(name)
        if not locked:
            UNLOCKED.add(name)
        return func

    return register


def find_endpoint(name: str, requested_version: str, release: ServerRelease) -> Handler:
    """The handler of ``name`` for a request at ``requested_version`` to a server presenting ``release``.

    Raises:
        ApiError: 404 as the real server's, when there is no such endpoint, it came after the requested version or
            after the release's newest API.
    """
    handler = ENDPOINTS.get(name)
    try:
        wanted = release.effective(requested_version)
    except ValueError:
        raise ApiError(400, 0, f"Invalid API version {requested_version!r} in the request path") from None
    if handler is None or MIN_VERSIONS.get(name, (1, 0)) > wanted:
        raise ApiError(404, 0, f"Unable to find endpoint for name {name} and version {requested_version}")
    return handler


def parse_request(name: str, data: Any) -> Any:
    """``data`` parsed into the endpoint's request model, or None when it has none.

    As on the real server, an endpoint's ``required_fields`` missing is 400/11; any other problem with the
    body (a schema-required field missing, a wrong type) is 400/12.
    """
    required = REQUIRED_FIELDS.get(name, ())
    if required and isinstance(data, dict):
        missing = [f for f in required if data.get(f) is None]
        if missing:
            raise missing_field(", ".join(missing))
    model = REQUEST_MODELS.get(name)
    if model is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        if first.get("type") == "missing":
            raise bad_request(f"Validation error: data must contain ['{where}'] properties") from None
        raise bad_request(f"Validation error (invalid value for {where}): {first.get('msg')}") from None
