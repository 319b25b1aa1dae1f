"""A local server in a temporary folder and a resource on it: the setting of the benchmarks that need only that."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def local_world(prefix: str) -> Iterator[tuple[Path, object, object]]:
    """Yield ``(folder, server, resource)``: a started ``LocalServer`` and a ``ClearMLResource`` on it, the home in
    the folder; the server is stopped and the folder removed on the way out."""
    from clearml_assets.local_server import LocalServer
    from clearml_assets.resource import ClearMLResource

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        os.environ["CLEARML_ASSETS_HOME"] = str(tmp / "home")
        server = LocalServer(tmp / "server", api_port=0, files_port=0)
        server.start()
        try:
            yield tmp, server, ClearMLResource.for_local_server(server.info, home=str(tmp / "res"))
        finally:
            server.stop()
