"""Package attributes imported on first use.

The spawned SDK children (training, datasets) import this package's modules; eager package exports
would make each child pay for Dagster definitions, pandas and pyarrow it never touches.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing each public name from its defining module on first use.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> relative module defining it (e.g. ``".client"``).
    """
    namespace = import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name], package), name)
        namespace[name] = value
        return value

    return __getattr__
