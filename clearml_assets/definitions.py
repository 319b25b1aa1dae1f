"""The Dagster ``Definitions`` of clearml_assets (loaded by ``workspace.yaml`` and ``dagster -m``)."""

from __future__ import annotations

import dagster as dg


def build_definitions() -> dg.Definitions:
    """Merge the definitions of every capability into one code location."""
    parts: list[dg.Definitions] = []
    return dg.Definitions.merge(*parts) if parts else dg.Definitions()


defs = build_definitions()
