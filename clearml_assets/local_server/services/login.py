"""``login.*`` and ``auth.logout``: how the ClearML web app signs in and out (clearml-server ``services/login``).

The local server offers the real server's *fixed users* mode (``basic.enabled``): the web app shows a user name and
password form and sends them as Basic credentials to ``auth.login``; here the user name is a key pair's access key
and the password its secret key. The simple mode (a name only, signed in with a key pair served to every visitor)
is not offered: it would hand the server's key pair to anyone who can load the page.
"""

from __future__ import annotations

from ..bll.auth import revoke_token
from ..core import Call, endpoint


@endpoint("login.supported_modes", authorize=None, min_version="2.9")
def supported_modes(call: Call) -> dict:
    """Fixed-users mode, no guest, no SSO; ``authenticated`` when the request carries a valid session."""
    return {
        "basic": {"enabled": True, "guest": {"enabled": False}},
        "sso": {},
        "sso_providers": [],
        "server_errors": {"missed_es_upgrade": False, "es_connection_error": False},
        "authenticated": bool(call.user),
    }


def _sign_out(call: Call) -> dict:
    """Revoke the token the call came with (the web port drops its cookie)."""
    revoke_token(call.store, call.extra.get("token_id"), call.extra.get("token_exp"))
    return {}


endpoint("login.logout", min_version="2.13")(_sign_out)
endpoint("auth.logout", min_version="2.2")(_sign_out)
