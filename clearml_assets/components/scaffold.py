"""``dg scaffold defs clearml_assets.<Component> <path> [--account NAME]``: a ``defs.yaml`` with the account filled
in and every other attribute in a commented example."""

from __future__ import annotations

import os
from typing import ClassVar

import dagster as dg
from pydantic import BaseModel, Field

from ..accounts import LOCAL_ACCOUNT


class ClearMLScaffoldParams(BaseModel):
    """What ``dg scaffold defs`` asks of a clearml_assets component."""

    account: str = Field(default="", description="ClearML account of the component (lower case); default: "
                                                 "$CLEARML_ASSETS_DEFAULT_ACCOUNT, else local (the embedded server).")


class ClearMLComponentScaffolder(dg.Scaffolder[ClearMLScaffoldParams]):
    """Writes ``defs.yaml``: the component's type, its account, and its ``EXAMPLE`` (commented attributes)."""

    examples: ClassVar[dict[str, str]] = {}

    @classmethod
    def get_scaffold_params(cls) -> type[ClearMLScaffoldParams]:
        return ClearMLScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ClearMLScaffoldParams]) -> None:
        account = request.params.account or os.environ.get("CLEARML_ASSETS_DEFAULT_ACCOUNT") or LOCAL_ACCOUNT
        name = request.type_name.rsplit(".", 1)[-1]
        header, example = self.examples[name].split("\n---\n", 1)
        text = (f"# {header.format(account=account)}\n"
                f"# Uncomment what you need; the Dagster UI's docs tab (and `dg utils inspect-component "
                f"{request.type_name}`) describe every attribute.\n"
                f"type: {request.type_name}\n\nattributes:\n  account: {account}\n{example}")
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(text)


def scaffolded_with_example(header: str, example: str):
    """Class decorator: scaffold the component with :class:`ClearMLComponentScaffolder` and this example."""

    def decorate(cls):
        ClearMLComponentScaffolder.examples[cls.__name__] = f"{header}\n---\n{example}"
        return dg.scaffold_with(ClearMLComponentScaffolder)(cls)

    return decorate
