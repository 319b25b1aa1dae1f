"""The child side of :mod:`clearml_assets.sdk_process`: one function call in a fresh interpreter.

Started as ``python -m clearml_assets.sdk_child <fd>`` with the one account's environment. It reads
``(sys.path, "module:function", args, kwargs)`` pickled on stdin and sends ``("ok", result)`` or
``("error", (type name, description, traceback))`` on the pipe ``fd``. It imports only the standard library and
the target's module: Dagster stays out of SDK children (a spawned ``multiprocessing`` child would re-import the
parent's ``__main__``, the Dagster CLI).
"""

from __future__ import annotations

import importlib
import pickle
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any


def main() -> None:
    """Run the call read from stdin and report its outcome on the pipe named in ``argv[1]``."""
    conn = Connection(int(sys.argv[1]), readable=False)
    try:
        sys_path, target, args, kwargs = pickle.load(sys.stdin.buffer)
        sys.path[:] = [p for p in sys_path if p] + [p for p in sys.path if p not in sys_path]
        module_name, _, qualname = target.partition(":")
        func: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            func = getattr(func, part)
        conn.send(("ok", func(*args, **kwargs)))
    except BaseException as exc:  # reported to the parent, which raises
        description = getattr(exc, "description", None) or f"{type(exc).__name__}: {exc}"
        conn.send(("error", (type(exc).__name__, str(description), traceback.format_exc())))
    finally:
        conn.close()


if __name__ == "__main__":
    main()
