"""clearml_assets: Dagster assets for ClearML, with an embedded local ClearML-compatible server."""

from typing import TYPE_CHECKING

from .lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .accounts import ClearMLAccount
    from .archives.defs import build_archive_defs
    from .automation.defs import build_automation_defs
    from .automation.schedules import build_clearml_project_archive_schedule, build_clearml_retraining_schedule
    from .automation.sensors import build_clearml_completed_tasks_sensor
    from .client import ClearMLClient
    from .components import ClearMLArchivesComponent, ClearMLDatasetsComponent, ClearMLYoloModelComponent
    from .datasets.defs import build_dataset_defs
    from .errors import (
        ArchiveError,
        ClearMLAssetsError,
        ClearMLConfigError,
        ClearMLConnectionError,
        ClearMLRequestError,
        DatasetValidationError,
        TrainingError,
    )
    from .pipes import PipesClearMLClient, open_clearml_pipes
    from .resource import ClearMLResource
    from .restore import restore_archive
    from .training.defs import build_training_defs

_EXPORTS = {
    "ClearMLAccount": ".accounts", "ClearMLClient": ".client", "ClearMLResource": ".resource",
    "build_archive_defs": ".archives.defs", "build_automation_defs": ".automation.defs",
    "build_dataset_defs": ".datasets.defs", "build_training_defs": ".training.defs",
    "build_clearml_completed_tasks_sensor": ".automation.sensors",
    "build_clearml_project_archive_schedule": ".automation.schedules",
    "build_clearml_retraining_schedule": ".automation.schedules",
    "PipesClearMLClient": ".pipes", "open_clearml_pipes": ".pipes", "restore_archive": ".restore",
    **{name: ".components" for name in ("ClearMLArchivesComponent", "ClearMLDatasetsComponent",
                                        "ClearMLYoloModelComponent")},
    **{name: ".errors" for name in ("ArchiveError", "ClearMLAssetsError", "ClearMLConfigError",
                                    "ClearMLConnectionError", "ClearMLRequestError", "DatasetValidationError",
                                    "TrainingError")},
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    # `dg list components` finds the components by dir() of this module (entry point dagster_dg_cli.registry_modules)
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ClearMLAccount", "ClearMLClient", "ClearMLResource",
    "build_archive_defs", "build_automation_defs", "build_dataset_defs", "build_training_defs",
    "build_clearml_completed_tasks_sensor", "build_clearml_project_archive_schedule",
    "build_clearml_retraining_schedule",
    "PipesClearMLClient", "open_clearml_pipes", "restore_archive",
    "ClearMLArchivesComponent", "ClearMLDatasetsComponent", "ClearMLYoloModelComponent",
    "ArchiveError", "ClearMLAssetsError", "ClearMLConfigError", "ClearMLConnectionError",
    "ClearMLRequestError", "DatasetValidationError", "TrainingError",
]
__version__ = "0.1.0"
