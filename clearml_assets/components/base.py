"""What the clearml_assets components share."""

from __future__ import annotations

import copy
import warnings
from abc import abstractmethod
from typing import Any

import dagster as dg
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .resource import resource_defs


class ClearMLComponent(dg.Component, dg.Model, dg.Resolvable):
    """A component whose attributes are pydantic fields, each with its ``Field(description=...)``.

    Dagster derives the YAML schema (what ``dg check defs`` validates and the UI's docs tab shows) from the
    fields, but drops the description of every field that has a default; :meth:`model` puts them back.
    Subclasses have an ``account`` attribute and build their definitions in :meth:`build_clearml_defs`.
    """

    account: str

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The component's definitions with the shared ``clearml`` resource; an account that is not configured
        fails here, when the definitions load (``dg check defs``), naming the variables that make it."""
        resources = resource_defs(self.account or None)
        # The beta/preview features used (backfill policies, partitioned checks) are deliberate.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=dg.BetaWarning)
            warnings.filterwarnings("ignore", category=dg.PreviewWarning)
            return dg.Definitions.merge(resources, self.build_clearml_defs(context))

    @abstractmethod
    def build_clearml_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The assets, checks, jobs, sensors and schedules, through the builders ``build_definitions`` uses."""

    @classmethod
    def model(cls) -> type[BaseModel]:
        derived = super().model()
        missing = {name: field.description for name, field in cls.model_fields.items()
                   if field.description and name in derived.model_fields
                   and derived.model_fields[name].description != field.description}
        if missing:
            for name, description in missing.items():
                derived.model_fields[name].description = description
            derived.model_rebuild(force=True)
        return derived


def run_config_field(config: type[dg.Config], name: str, **default: Any) -> Any:
    """An attribute that is the default of a run-config field: the field's description and constraints, one
    source for both (``default=`` replaces the field's own default)."""
    info: FieldInfo = copy.copy(config.model_fields[name])
    if "default" in default:
        info.default, info.default_factory = default["default"], None
    info.description = f"{info.description} The default of the assets' run config (a run may override it)."
    return info
