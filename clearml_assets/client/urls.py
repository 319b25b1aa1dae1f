"""Hosts of a ClearML account: the web and files hosts the SDK derives, the fileserver's own-URL rule and
credential masking. Pure functions: nothing here talks to a server."""

from __future__ import annotations

import re
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

SAAS_API_HOST = "https://api.clear.ml"
SAAS_WEB_HOST = "https://app.clear.ml"
SAAS_FILES_HOST = "https://files.clear.ml"
#: Older names of the SaaS fileserver that stored URIs still carry (the SDK's ``Session.legacy_file_servers``).
SAAS_LEGACY_FILES_HOSTS = ("https://files.community.clear.ml",)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

# The userinfo ends at the authority's last "@" (as urlsplit and every HTTP client read it: a password may hold
# "@"), and never crosses a quote or brace (a URL inside compact JSON). The scheme is bounded so that a megabyte
# of letters is scanned in linear time, not quadratic.
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31}://)[^/?#\s\"<>\\{}]*@")


def strip_url_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed (for messages naming an endpoint)."""
    return _URL_USERINFO.sub(r"\1", text)


def redact_url_credentials(value: Any) -> Any:
    """``value`` with the ``user:password@`` part of every URL in it (strings, nested lists/dicts) masked."""
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1***@", value)
    if isinstance(value, list):
        return [redact_url_credentials(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_url_credentials(v) for k, v in value.items()}
    return value


def derive_web_host(api_host: str) -> str | None:
    """The web app host the ClearML SDK derives from an API host (``Session.get_app_server_host``).

    ``https://api.clear.ml`` -> ``https://app.clear.ml``, ``https://api.<domain>`` -> ``https://app.<domain>``,
    ``http://<host>:8008`` -> ``http://<host>:8080``; None when the SDK could not derive one either.
    """
    host = api_host.rstrip("/")
    if host == SAAS_API_HOST:
        return SAAS_WEB_HOST
    if "://demoapi." in host:
        return host.replace("://demoapi.", "://demoapp.", 1)
    if "://api." in host:
        return host.replace("://api.", "://app.", 1)
    try:
        port = urlsplit(host).port
    except ValueError:
        return None
    return host.replace(":8008", ":8080", 1) if port == 8008 else None


def derive_files_host(api_host: str, web_host: str | None = None) -> str | None:
    """The files host the ClearML SDK derives when none is configured (``Session.get_files_server_host``).

    From the web host (given, or derived from the API host): its port becomes 8081, ``app.`` becomes
    ``files.`` (``demoapp.`` -> ``demofiles.``), else ``:8081`` is appended; SaaS is ``https://files.clear.ml``.
    None when no web host can be derived (the SDK fails there too).
    """
    if api_host.rstrip("/") == SAAS_API_HOST:
        return SAAS_FILES_HOST
    app = (web_host or derive_web_host(api_host) or "").rstrip("/")
    if not app:
        return None
    parts = urlsplit(app)
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = parts.netloc
    if port:
        netloc = netloc.replace(f":{port}", ":8081", 1)
    elif netloc.startswith("demoapp."):
        netloc = netloc.replace("demoapp.", "demofiles.", 1)
    elif netloc.startswith("app."):
        netloc = netloc.replace("app.", "files.", 1)
    else:
        netloc += ":8081"
    return urlunsplit(parts._replace(netloc=netloc))


def loopback_aliases(files_host: str | None) -> tuple[str, ...]:
    """The other loopback spellings of a loopback files host (``localhost`` for ``127.0.0.1``, ...).

    The SDK stores URIs under the files host it was configured with, so one local server's files carry
    whichever spelling each script used. The resource accepts them for its accounts; the client alone
    compares hosts exactly.
    """
    if not files_host:
        return ()
    parts = urlsplit(files_host.rstrip("/"))
    if parts.hostname not in _LOOPBACK:
        return ()
    port = f":{parts.port}" if parts.port else ""
    spelled = [urlunsplit(parts._replace(netloc=f"[{name}]{port}" if ":" in name else f"{name}{port}"))
               for name in _LOOPBACK if name != parts.hostname]
    return tuple(spelled)


def files_host_aliases(files_host: str | None, configured: Sequence[str]) -> tuple[str, ...]:
    """Configured aliases plus, for ClearML SaaS, the fileserver's former name the SDK still accepts."""
    found = [a.strip().rstrip("/") for a in configured if a and a.strip()]
    if files_host == SAAS_FILES_HOST:
        found.extend(SAAS_LEGACY_FILES_HOSTS)
    return tuple(dict.fromkeys(a for a in found if a != files_host))


def path_under(host: str, url: str) -> str | None:
    """The part of ``url`` after ``host`` (path, query), or None if ``url`` is not a safe URL under it:
    scheme, host and port equal, under its path, no ``..`` (even percent-encoded), no NUL, no credentials."""
    try:
        own, other = urlsplit(host), urlsplit(url)
        other_port, own_port = other.port, own.port
    except ValueError:  # e.g. a port that is not a number
        return None
    path = unquote(other.path)
    base = own.path.rstrip("/")
    same = (other.scheme, other.hostname, other_port) == (own.scheme, own.hostname, own_port)
    if not same or other.scheme not in ("http", "https") or other.username or other.password \
            or "\0" in path or ".." in path.replace("\\", "/").split("/") or not path.startswith(base + "/"):
        return None
    if not other.path.startswith(base + "/"):
        return None
    return other.path[len(base):] + (f"?{other.query}" if other.query else "")


def web_url(web_host: str, kind: str, obj_id: str, project_id: str | None = None) -> str:
    """A page of the ClearML web app at ``web_host``: ``task``, ``project``, ``dataset`` or ``model``."""
    project = project_id or "*"
    if kind == "task":
        return f"{web_host}/projects/{project}/experiments/{obj_id}/output/execution"
    if kind == "project":
        return f"{web_host}/projects/{obj_id}/experiments"
    if kind == "dataset":
        return f"{web_host}/datasets/simple/{project}/experiments/{obj_id}"
    if kind == "model":
        return f"{web_host}/projects/{project}/models/{obj_id}"
    raise ValueError(f"unknown ClearML page kind {kind!r}: use task, project, dataset or model")
