"""The errors the client raises: each names the account, the host and the call, and says what to do.

Connection errors carry ``retryable`` (the account check retries those within its deadline).
"""

from __future__ import annotations

from typing import Any

import requests
import urllib3

from ..errors import ClearMLConnectionError, ClearMLRequestError

#: Statuses that mean "not now, try again" (rate limit, maintenance/overload), honouring ``Retry-After``.
RETRY_STATUSES = (429, 502, 503, 504)
#: What a request or the stream of its answer raises when the connection fails (or a deadline cut it).
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)
_MIB = 1024 * 1024


def _connection_error(text: str, retryable: bool, **metadata: Any) -> ClearMLConnectionError:
    error = ClearMLConnectionError(text, metadata={k: v for k, v in metadata.items() if v is not None} or None)
    error.retryable = retryable
    return error


def _what(call: str, host: str) -> str:
    return f"{call} to {host}" if call else host


def unreachable(account: str, host: str, exc: Exception, call: str = "") -> ClearMLConnectionError:
    """The host could not be reached, or the connection broke during the answer."""
    reason = type(exc).__name__
    where = f" during {call}" if call else ""
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) \
            or broken_mid_body(exc):
        return _connection_error(
            f"ClearML account '{account}': the connection to {host} broke in the middle of an answer{where} "
            f"({reason}); nothing partial was kept. Try again; if it repeats, check the network or a proxy "
            "between here and the server.", True, endpoint=call or None)
    if isinstance(exc, requests.exceptions.RetryError):  # urllib3 gave up on 502/503/504
        reason = "it kept answering 5xx"
    elif isinstance(exc, requests.ConnectTimeout):
        reason = "connection timed out"
    elif isinstance(exc, requests.ConnectionError):
        reason = "connection refused or dropped"
    elif isinstance(exc, requests.Timeout):
        reason = "no answer in time"
    return _connection_error(
        f"ClearML account '{account}': cannot reach {host}{where} ({reason}). Check that the server "
        "is running and the account's host settings (api/files host) are right; the embedded "
        "server (account 'local') can be started with `clearml-assets local-server`.", True,
        endpoint=call or None)


def broken_mid_body(exc: Exception) -> bool:
    """Whether ``exc`` is the stream of an answer breaking (rather than a connection never made)."""
    return isinstance(exc, (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError,
                            urllib3.exceptions.ReadTimeoutError, ConnectionError))


def deadline_passed(account: str, host: str, call: str, seconds: float) -> ClearMLConnectionError:
    """The call did not finish (every attempt and the whole answer) within its deadline."""
    return _connection_error(
        f"ClearML account '{account}': {_what(call, host)} did not finish within its {seconds:.0f}s deadline "
        "(the server stopped answering, or sent its answer too slowly); nothing partial was kept. Check the "
        "server's health and the network; the deadline is the account's request_deadline_seconds.", True,
        endpoint=call or None, deadline_seconds=seconds)


def too_large(account: str, host: str, call: str, size: int, cap: int, declared: bool) -> ClearMLRequestError:
    """An answer larger than the client accepts (refused before it was held whole)."""
    how = f"declared {size:,} bytes" if declared else f"sent more than {cap:,} bytes"
    return ClearMLRequestError(
        f"ClearML account '{account}': {_what(call, host)} {how}, over the {cap / _MIB:.0f} MiB this client "
        "reads in one answer; it was refused and not read further. If the server is right, ask for smaller "
        "pages or raise the account's max_response_mib.",
        metadata={"endpoint": call, "cap_bytes": cap, "size_bytes": size})


def not_clearml_json(account: str, host: str, call: str, status: int, body: bytes | bytearray) -> ClearMLRequestError:
    """An answer that is not a ClearML JSON envelope (malformed JSON, an HTML page, a proxy's error)."""
    preview = bytes(body[:80]).decode("utf-8", "replace")
    return ClearMLRequestError(
        f"ClearML account '{account}': {_what(call, host)} answered HTTP {status} with a body that is not a "
        f"ClearML JSON answer ({len(body):,} bytes, starting {preview!r}). Is the API host right, and is no "
        "proxy rewriting the answers?",
        metadata={"endpoint": call, "http_status": status})


def server_error(account: str, host: str, status: int, msg: str | None, *, call: str = "", retried: int = 0,
                 read: bool = True, wait: float | None = None, wait_bound: float | None = None
                 ) -> ClearMLConnectionError:
    """The server answered 5xx or 429 (after the retries a read gets)."""
    what = f"{call} to " if call else ""
    if status == 429:
        head = f"{what}{host} answered HTTP 429 (too many requests)"
    else:
        head = f"{what}{host} answered HTTP {status}{f' ({msg})' if msg else ''}"
    if wait is not None and wait_bound is not None and wait > wait_bound:
        tail = (f" and asked to wait {wait:.0f}s, longer than the {wait_bound:.0f}s this client waits (or has "
                "left before the call's deadline); try again later.")
    elif not read:
        tail = (": the server is unavailable or overloaded. This call changes data, so it was not sent "
                "again; it may or may not have taken effect: check in ClearML before running again.")
    else:
        tail = (f"{f' {retried + 1} times' if retried else ''}: the server is unavailable or overloaded. "
                "Try again later or check the server's health.")
    return _connection_error(f"ClearML account '{account}': {head}{tail}", status in RETRY_STATUSES,
                             endpoint=call, http_status=status, retried=retried)


def refused_keys(account: str, host: str, msg: str | None) -> ClearMLConnectionError:
    """``auth.login`` answered 401."""
    return _connection_error(
        f"ClearML account '{account}' at {host} refused its keys (401: {msg or 'invalid credentials'}). Check "
        "the account's access/secret key environment variables (see docs/accounts.md) or create new "
        "credentials in the ClearML web app (Settings > Workspace > Create new credentials).", False)


def no_token(account: str, host: str, status: int) -> ClearMLConnectionError:
    """``auth.login`` answered without a token: not an API server."""
    return _connection_error(
        f"ClearML account '{account}': {host} answered auth.login without a token (HTTP {status}). Is this "
        "the ClearML API server (usually port 8008 or https://api.<domain>) rather than the web or files "
        "host?", False)


def revoked(account: str, host: str, call: str, msg: str | None) -> ClearMLConnectionError:
    """A 401 that logging in again did not cure."""
    return _connection_error(
        f"ClearML account '{account}': {host} refused {call} (401: {msg or 'unauthorized'}) even with a fresh "
        "login: the keys were revoked or lost their rights. Check the account's access/secret key.", False)


def request_failed(account: str, call: str, code: int, subcode: Any, msg: str | None) -> ClearMLRequestError:
    """The server answered the call with an error result (4xx, or 500 with an envelope)."""
    return ClearMLRequestError(f"ClearML account '{account}': {call} failed with {code}/{subcode}: {msg}",
                               metadata={"endpoint": call, "result_code": code, "result_subcode": subcode})
