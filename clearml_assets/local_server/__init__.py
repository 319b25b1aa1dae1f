"""The embedded local ClearML-compatible server (API, fileserver, web view), for tests and the default run.

Layers, each importing only those below it (``lint-imports`` checks it, pyproject ``[tool.importlinter]``), as
clearml-server's ``apiserver/services -> bll -> database``:

- processes: :mod:`.ensure` (find or start a home's server), :mod:`.runner` (:class:`LocalServer`, child
  processes);
- HTTP: :mod:`.app` (the API), :mod:`.fileserver`, :mod:`.web` (the read-only web view), :mod:`.webapp` (the
  ClearML web app), :mod:`.self_description` (where the other parts listen, proof of the keys);
- :mod:`.auth` (key pairs, tokens), :mod:`.throttle` (the 429 switch), :mod:`.server_info` (``server.json``,
  ports);
- :mod:`.services`: one module per ClearML service, request in, ``bll`` call, answer out;
- :mod:`.bll`: the logic, per entity (``task``, ``project``, ``queue``, ``workers``, ``event``, ``access``,
  ``tags``);
- :mod:`.store` (SQLite persistence, ``*.get_all`` query semantics, events storage) and :mod:`.apimodels`
  (typed requests);
- :mod:`.core`: shared types (``Call``, the endpoint registry, ``ApiError``, ``RawJSON``, constants, ids, time).
"""

from .auth import Credential, generate_credential
from .runner import LocalServer, LocalServerProcess, start_local_server_process
from .server_info import (DEFAULT_API_PORT, DEFAULT_FILES_PORT, DEFAULT_HOST, DEFAULT_WEB_PORT, LocalServerInfo,
                          free_port, sdk_config_file, wait_until_ready)

__all__ = [
    "Credential", "generate_credential", "LocalServer", "LocalServerInfo", "LocalServerProcess",
    "start_local_server_process", "free_port", "wait_until_ready", "sdk_config_file",
    "DEFAULT_API_PORT", "DEFAULT_FILES_PORT", "DEFAULT_HOST", "DEFAULT_WEB_PORT",
]
