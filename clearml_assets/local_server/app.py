"""The Starlette application of the ClearML REST API (the HTTP layer: routing, authentication, request parsing).

The API follows the real server's transport: ``/v{X.Y}/{service}.{action}`` (or no version
prefix), GET or POST with a JSON body (``application/json-lines`` for batches), and the
``{"meta": ..., "data": ...}`` envelope whose ``result_code`` equals the HTTP status.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .auth import Authenticator
from .bll import tags
from .core import ApiError, Call
from .core.rawjson import dumps
from .core.registry import OPTIONAL_AUTH, UNAUTHENTICATED, UNLOCKED, find_endpoint, parse_request
from .core.versions import NEWEST, ServerRelease
from .store import Store
from .throttle import Throttle

log = logging.getLogger(__name__)

PATH_RE = re.compile(r"^/?(v(?P<version>\d+\.\d+)/)?(?P<name>[a-zA-Z_]\w*\.[a-zA-Z_]\w*)/?$")
MAX_BODY_BYTES = 512 * 1024 * 1024


def envelope(name: str, version: str, code: int, subcode: int, msg: str, data: Any,
             release: ServerRelease = NEWEST) -> Response:
    """A ClearML response envelope with HTTP status == result_code."""
    trx = uuid.uuid4().hex
    meta = {
        "id": trx,
        "trx": trx,
        "endpoint": {"name": name, "requested_version": version, "actual_version": release.api_version},
        "result_code": code,
        "result_subcode": subcode,
        "result_msg": msg,
        "error_stack": None,
        "error_data": {},
    }
    body = dumps({"meta": meta, "data": data})
    return Response(body, status_code=code, media_type="application/json")


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return {}
    text = raw.decode("utf-8")
    if "json-lines" in content_type:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


async def _bounded_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``MAX_BODY_BYTES`` (never read whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, 0, f"Request body too large ({declared} bytes; at most {MAX_BODY_BYTES})")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, 0, f"Request body too large (more than {MAX_BODY_BYTES} bytes)")
    return bytes(raw)


def build_api_app(store: Store, authenticator: Authenticator, throttle: Throttle | None = None,
                  release: ServerRelease = NEWEST) -> Starlette:
    """The API application serving every registered endpoint.

    ``throttle`` (default: from ``CLEARML_ASSETS_SERVER_429``, off when unset) makes chosen calls answer 429 with
    ``Retry-After``; it is reachable as ``store.throttle`` so in-process tests can arm it (see :mod:`.throttle`).
    ``release`` is the clearml-server release the API presents itself as: which endpoints exist and which
    version a request without one gets (see :mod:`.core.versions`).
    """
    from . import services  # noqa: F401  (registers the endpoints)

    throttle = throttle if throttle is not None else Throttle.from_env()
    store.throttle = throttle
    handler = _ApiHandler(store, authenticator, throttle, release)
    return Starlette(routes=[Route("/{path:path}", handler.handle, methods=["GET", "POST", "PUT"])])


@dataclass
class _ApiHandler:
    """Answers one API request: path, throttle, authentication, body, the endpoint, the envelope."""

    store: Store
    authenticator: Authenticator
    throttle: Throttle
    release: ServerRelease = NEWEST

    async def handle(self, request: Request) -> Response:
        """The envelope of ``/v{X.Y}/{service}.{action}``: the endpoint's answer or its error."""
        match = PATH_RE.match(request.url.path)
        if not match:
            return envelope(request.url.path.strip("/"), "", 400, 0, f"Invalid request path {request.url.path}", {})
        name, version = match.group("name"), match.group("version") or self.release.api_version
        started = time.monotonic()
        retry_after = self.throttle.check(name)
        if retry_after is not None:
            response = envelope(name, version, 429, 0, "Too Many Requests (local server 429 switch)", {}, self.release)
            response.headers["Retry-After"] = str(retry_after)
            return response
        try:
            return await self._dispatch(request, name, version)
        except ApiError as err:
            return envelope(name, version, err.code, err.subcode, err.msg, err.data, self.release)
        except Exception as exc:  # a bug: the client gets the real server's 500 shape
            log.error("local server error in %s: %s\n%s", name, exc, traceback.format_exc())
            return envelope(name, version, 500, 0, f"General data error ({type(exc).__name__}: {exc})", {},
                            self.release)
        finally:
            log.debug("%s took %.1f ms", name, (time.monotonic() - started) * 1000)

    async def _dispatch(self, request: Request, name: str, version: str) -> Response:
        handler = find_endpoint(name, version, self.release)
        authorization = request.headers.get("authorization")
        if name == "auth.login":
            return envelope(name, version, 200, 0, "OK", self.authenticator.login(authorization), self.release)
        identity = self._identity(name, authorization)
        if identity and not identity.get("auth_only"):
            self.store.ensure_user(identity.get("company", ""), identity.get("user", ""), identity.get("user_name"))
        call = await self._call(request, name, version, identity)
        if name in UNLOCKED:
            result = await run_in_threadpool(handler, call)
        else:
            result = await run_in_threadpool(_locked, self.store, handler, call)
        if isinstance(result, Response):  # raw endpoints such as events.download_task_log
            return result
        result = tags.conform_result(call.api_version, result)
        return envelope(name, version, 200, 0, "OK", result if result is not None else {}, self.release)

    def _identity(self, name: str, authorization: str | None) -> dict:
        """Who calls: the token's identity; none for endpoints answered without one (a valid token given to an
        endpoint that takes either is still its identity)."""
        if name in OPTIONAL_AUTH:
            try:
                return self.authenticator.identity(authorization) if authorization else {}
            except ApiError:
                return {}
        return {} if name in UNAUTHENTICATED else self.authenticator.identity(authorization)

    async def _call(self, request: Request, name: str, version: str, identity: dict) -> Call:
        """The request as a :class:`Call`: body read (bounded) and parsed, tags conformed, model validated."""
        raw = await _bounded_body(request)
        try:
            data = _parse_body(raw, request.headers.get("content-type", ""))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, 12, f"Invalid JSON body: {exc}") from None
        if isinstance(data, dict):
            data.pop("method", None)  # the SDK sends a spurious "method" key
        elif not isinstance(data, list):
            raise ApiError(400, 12, "Request body must be a JSON object")
        data = tags.conform_request(name, self.release.effective(version), data)
        return Call(endpoint=name, data=data, company=identity.get("company", ""), user=identity.get("user", ""),
                    store=self.store, requested_version=version, release=self.release,
                    extra={"query": dict(request.query_params), "worker": request.headers.get("x-clearml-worker", ""),
                           "token_id": identity.get("token_id"), "token_exp": identity.get("token_exp")},
                    model=parse_request(name, data))


def _locked(store: Store, handler, call: Call) -> dict:
    with store.lock:
        return handler(call)
