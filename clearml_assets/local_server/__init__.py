"""The embedded local ClearML-compatible server (API + fileserver), for tests and the default run."""

from .auth import Credential, generate_credential
from .runner import (
    DEFAULT_API_PORT,
    DEFAULT_FILES_PORT,
    DEFAULT_HOST,
    DEFAULT_WEB_PORT,
    LocalServer,
    LocalServerInfo,
    LocalServerProcess,
    free_port,
    start_local_server_process,
    wait_until_ready,
)

__all__ = [
    "Credential", "generate_credential", "LocalServer", "LocalServerInfo", "LocalServerProcess",
    "start_local_server_process", "free_port", "wait_until_ready",
    "DEFAULT_API_PORT", "DEFAULT_FILES_PORT", "DEFAULT_HOST", "DEFAULT_WEB_PORT",
]
