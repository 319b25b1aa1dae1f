"""The local server's own two endpoints beside the API: where its other parts listen, and a proof of its keys.

``GET /clearml_assets.local_server`` answers a client holding one of the server's key pairs with the server's
hosts and ports (so a ``local`` account pointed at the API URL finds the rest); :data:`PROOF_PATH` answers anyone.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from .auth import Authenticator

SELF_DESCRIPTION_PATH = "/clearml_assets.local_server"
PROOF_PATH = "/clearml_assets.local_server/proof"
"""``GET ?key=<access key>&nonce=<hex>``, unauthenticated: :meth:`Authenticator.proof` (how ``ensure`` tells this
server from a program that took its port, before it sends any credential)."""


def with_self_description(api, authenticator: Authenticator, describe: Callable[[], dict[str, Any]]):
    """The API app, plus ``GET`` :data:`SELF_DESCRIPTION_PATH` (``describe()``: the server's hosts and ports, for
    a client holding one of its key pairs) and ``GET`` :data:`PROOF_PATH`."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def app(scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in (SELF_DESCRIPTION_PATH, PROOF_PATH):
            return await api(scope, receive, send)
        request = Request(scope, receive)
        if scope["path"] == PROOF_PATH:
            nonce = request.query_params.get("nonce", "")[:128]
            response = JSONResponse({"proof": authenticator.proof(request.query_params.get("key", ""), nonce)})
        else:
            response = _self_description(request, authenticator, describe)
        await response(scope, receive, send)

    return app


def _self_description(request, authenticator: Authenticator, describe: Callable[[], dict[str, Any]]):
    """The server's hosts and ports for a holder of one of its key pairs (401 otherwise)."""
    from starlette.responses import JSONResponse

    try:
        authenticator.identity(request.headers.get("authorization"))
    except Exception:
        return JSONResponse({"error": "a key pair of this server is needed"}, status_code=401)
    return JSONResponse({**describe(), "pid": os.getpid()})


__all__ = ["PROOF_PATH", "SELF_DESCRIPTION_PATH", "with_self_description"]
