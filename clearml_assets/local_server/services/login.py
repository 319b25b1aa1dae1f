"""``login.*`` and ``auth.logout``: how the ClearML web app signs in and out (clearml-server ``services/login``).

The local server offers the real server's *fixed users* mode (``basic.enabled``): the web app shows a user name
and password form and sends them as Basic credentials to ``auth.login``; here the user name is a key pair's
access key and the password its secret key. The simple mode (a name only, signed in with a key pair served to
every visitor) is not offered: it would hand the server's key pair to anyone who can load the page.
"""

from __future__ import annotations

from ..registry import Call, endpoint


@endpoint("login.supported_modes", authorize=False)
def supported_modes(call: Call) -> dict:
    """Fixed-users mode, no guest, no SSO; ``authenticated`` when the request carries a valid session."""
    return {
        "basic": {"enabled": True, "guest": {"enabled": False}},
        "sso": {},
        "sso_providers": [],
        "server_errors": {"missed_es_upgrade": False, "es_connection_error": False},
        "authenticated": bool(call.user),
    }


@endpoint("login.logout")
def login_logout(call: Call) -> dict:
    """Sign out: the session's token is revoked and its cookie dropped (by the web port, which holds it)."""
    return {}


@endpoint("auth.logout")
def auth_logout(call: Call) -> dict:
    """As ``login.logout`` (API 2.2)."""
    return {}
