"""Signing in and out of the web view, and the pages that need a signed-in identity."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..auth import TOKEN_LIFETIME_SEC, Authenticator
from ..core import ApiError
from ..store import Store
from .data import ReadApi
from .render import render

TOKEN_COOKIE = "clearml_token_basic"


_PageHandler = Callable[[Request, ReadApi], Response]


@dataclass
class Session:
    """Signing in and out, and the pages that need a signed-in identity.

    Attributes:
        store: The server's store (read only).
        authenticator: The server's authenticator.
        info: The server's ``LocalServerInfo``.
    """

    store: Store
    authenticator: Authenticator
    info: Any

    def page(self, handler: _PageHandler) -> Callable[[Request], Response]:
        """An endpoint running ``handler`` for the request's identity.

        Args:
            handler: The page, given the request and a read API of the identity's data.

        Returns:
            An endpoint that redirects to the sign-in page without a valid token and answers an
            ``ApiError`` of ``handler`` with an error page (404 for the server's 400).
        """
        def endpoint(request: Request) -> Response:
            token = request.cookies.get(TOKEN_COOKIE)
            header = request.headers.get("authorization") or (f"Bearer {token}" if token else None)
            try:
                identity = self.authenticator.identity(header)
            except ApiError:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            try:
                return handler(request, ReadApi(self.store, identity))
            except ApiError as exc:
                status = 404 if exc.code == 400 else exc.code
                return render("error", status_code=status, title="Not found", message=exc.msg)
        return endpoint

    def login_page(self, request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
        """The sign-in form (with ``error`` shown when given)."""
        return render("login", status_code=status_code, signed_in=False, error=error, data_dir=self.info.data_dir,
                       next=_safe_next(request.query_params.get("next", "/projects")))

    async def login(self, request: Request) -> Response:
        """``GET``: the sign-in form; ``POST``: check the key pair and set the token cookie."""
        if request.method == "GET":
            return self.login_page(request)
        form = await request.form()
        key, secret = str(form.get("access_key", "")).strip(), str(form.get("secret_key", "")).strip()
        basic = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        try:
            token = self.authenticator.login(basic)["token"]
        except ApiError:
            return self.login_page(request, "Unknown access key or wrong secret key.", 401)
        response = RedirectResponse(_safe_next(str(form.get("next", "/projects"))), status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, max_age=TOKEN_LIFETIME_SEC, httponly=True, samesite="lax",
                            path="/")
        return response


def logout(request: Request) -> Response:
    """Drop the token cookie and go to the sign-in page."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect through ``next``."""
    target = unquote(target) if target.startswith("%2F") else target
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/projects"
    return target
