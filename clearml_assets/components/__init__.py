"""Dagster Components of clearml_assets, for projects made with ``create-dagster`` and driven by ``dg``.

``dg list components`` lists them (the package registers itself with the ``dagster_dg_cli.registry_modules``
entry point); ``dg scaffold defs clearml_assets.<Component> <path>`` writes a ``defs.yaml`` with the account filled
in and a commented example of every attribute. Each component builds its definitions through the same builders
as :func:`clearml_assets.definitions.build_definitions`, so the YAML and the Python ways in give the same assets:

* :class:`ClearMLArchivesComponent`: task and project archives of one account, with their checks, the
  completed-task sensor, the project archive schedule and the account's restore asset.
* :class:`ClearMLDatasetsComponent`: the dataset versions raw -> curated -> training view.
* :class:`ClearMLYoloModelComponent`: the YOLO model trained on the training view, locally or on a queue.
"""

from .archives import ClearMLArchivesComponent
from .datasets import ClearMLDatasetsComponent
from .model import ClearMLYoloModelComponent
from .resource import shared_clearml_resource
from .scaffold import ClearMLComponentScaffolder, ClearMLScaffoldParams

__all__ = ["ClearMLArchivesComponent", "ClearMLComponentScaffolder", "ClearMLDatasetsComponent",
           "ClearMLScaffoldParams", "ClearMLYoloModelComponent", "shared_clearml_resource"]
