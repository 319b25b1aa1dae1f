"""The public surface users see in the Dagster UI and in code: described config, Failure-rooted errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import dagster as dg

import clearml_assets
from clearml_assets import errors


def _project_classes(base: tuple[type, ...]) -> set[type]:
    found = set()
    for info in pkgutil.walk_packages(clearml_assets.__path__, "clearml_assets."):
        if ".local_server" in info.name:
            continue
        for obj in vars(importlib.import_module(info.name)).values():
            if inspect.isclass(obj) and issubclass(obj, base) and obj.__module__.startswith("clearml_assets"):
                found.add(obj)
    return found


def test_every_config_and_resource_field_has_a_description():
    classes = _project_classes((dg.Config, dg.ConfigurableResource))
    assert {c.__name__ for c in classes} >= {"ClearMLResource", "ClearMLTrainingConfig", "ClearMLRawDatasetConfig"}
    undocumented = [f"{c.__name__}.{name}" for c in classes for name, field in c.model_fields.items()
                    if not (field.description or "").strip()]
    assert undocumented == []


def test_every_project_error_is_a_dagster_failure():
    error_classes = [obj for obj in vars(errors).values() if inspect.isclass(obj) and obj.__module__ == errors.__name__]
    assert len(error_classes) >= 6
    assert all(issubclass(cls, dg.Failure) for cls in error_classes)
    assert set(clearml_assets.__all__) >= {cls.__name__ for cls in error_classes}


def test_endpoint_names_live_in_the_client_layer():
    """The package calls the typed per-service clients (``client.tasks.get(id)``); ``service.action`` names
    and raw ``.call(`` stay in ``clearml_assets/client/`` (and the local server, which serves them)."""
    import re
    from pathlib import Path

    endpoint = re.compile(r"""["'](?:tasks|projects|models|events|queues|workers|users|auth)\.[a-z_]+(?<!\.json)"""
                          r"""(?<!\.jsonl)["']|\.call\(""")
    root = Path(clearml_assets.__file__).parent
    layer = {root / "client", root / "local_server"}
    checked = [path for path in root.rglob("*.py") if not layer & set(path.parents)]
    assert len(checked) > 50
    found = [f"{path.relative_to(root)}:{n}" for path in checked
             for n, line in enumerate(path.read_text().splitlines(), 1) if endpoint.search(line)]
    assert found == []
    assert endpoint.search('"tasks.get_all"') and not endpoint.search('"models.json"')
