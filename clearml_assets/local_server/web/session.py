"""Signing in and out of the web view (a revocable, read-only server-side session), and the pages that need a
signed-in identity."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..auth import VIEW_SESSION_COOKIE, Authenticator, ViewSessions
from ..core import ApiError
from ..store import Store
from .data import ReadApi
from .render import render

_PageHandler = Callable[[Request, ReadApi], Response]


@dataclass
class Session:
    """Signing in and out (a server-side session, :class:`~..auth.ViewSessions`), and the pages that need a
    signed-in identity.

    Attributes:
        store: The server's store (read only).
        authenticator: The server's authenticator (checks the key pair at sign-in, API tokens in a header).
        sessions: The web view's sessions, shared with the fileserver (downloads).
    """

    store: Store
    authenticator: Authenticator
    sessions: ViewSessions

    def page(self, handler: _PageHandler) -> Callable[[Request], Response]:
        """An endpoint running ``handler`` for the request's identity.

        Args:
            handler: The page, given the request and a read API of the identity's data.

        Returns:
            An endpoint that redirects to the sign-in page without a live session (or an API token in the
            ``Authorization`` header) and answers an ``ApiError`` of ``handler`` with an error page (404 for the
            server's 400).
        """
        def endpoint(request: Request) -> Response:
            identity = self._identity(request)
            if identity is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            try:
                return handler(request, ReadApi(self.store, identity))
            except ApiError as exc:
                status = 404 if exc.code == 400 else exc.code
                return render("error", status_code=status, title="Not found", message=exc.msg)
        return endpoint

    def _identity(self, request: Request) -> dict | None:
        header = request.headers.get("authorization")
        if not header:
            return self.sessions.identity(request.cookies.get(VIEW_SESSION_COOKIE))
        try:
            return self.authenticator.identity(header)
        except ApiError:
            return None

    def login_page(self, request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
        """The sign-in form (with ``error`` shown when given)."""
        return render("login", status_code=status_code, signed_in=False, error=error,
                      next=_safe_next(request.query_params.get("next", "/projects")))

    async def login(self, request: Request) -> Response:
        """``GET``: the sign-in form; ``POST``: check the key pair and start a session (its id in the cookie)."""
        if request.method == "GET":
            return self.login_page(request)
        form = await request.form()
        key, secret = str(form.get("access_key", "")).strip(), str(form.get("secret_key", "")).strip()
        basic = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        try:
            identity = self.authenticator.identity(basic)
        except ApiError:
            return self.login_page(request, "Unknown access key or wrong secret key.", 401)
        response = RedirectResponse(_safe_next(str(form.get("next", "/projects"))), status_code=303)
        response.set_cookie(VIEW_SESSION_COOKIE, self.sessions.create(identity), max_age=self.sessions.lifetime,
                            httponly=True, samesite="lax", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        """End the session on the server, drop the cookie and go to the sign-in page."""
        self.sessions.revoke(request.cookies.get(VIEW_SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(VIEW_SESSION_COOKIE, path="/")
        return response


def _safe_next(target: str) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect through ``next``."""
    target = unquote(target) if target.startswith("%2F") else target
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/projects"
    return target
