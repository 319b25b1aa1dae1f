"""The Dagster ``Definitions`` of clearml_assets (loaded by ``workspace.yaml`` and ``dagster -m``).

Accounts come from the environment (and ``.env``, which Dagster loads): see
:meth:`ClearMLResource.from_env`. The embedded local server is always the ``local`` account.
"""

from __future__ import annotations

import warnings

import dagster as dg

from .archives.defs import build_archive_defs
from .automation.defs import build_automation_defs
from .datasets.defs import build_dataset_defs
from .deployment import deployment_executor
from .resource import ClearMLResource
from .restore.sync import build_sync_definitions
from .training.defs import build_training_defs
from .translator import DagsterClearMLTranslator


def build_definitions(clearml: ClearMLResource | None = None,
                      translator: DagsterClearMLTranslator | None = None) -> dg.Definitions:
    """Merge the definitions of every capability into one code location.

    Args:
        clearml: The resource to bind as ``clearml``; default: accounts from the environment.
        translator: One mapping of ClearML datasets, the model and each account's archives to asset keys and
            groups, handed to every capability (default: ``datasets/...``, ``training/...``,
            ``<account>/clearml_task_archive``).
    """
    clearml = clearml or ClearMLResource.from_env()
    # The beta/preview features used here (backfill policies, partitioned checks) are deliberate; their
    # notices say nothing a user of these definitions can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        datasets = build_dataset_defs(translator=translator)
        training = build_training_defs(translator=translator)
        archives = build_archive_defs(clearml.account_names(), translator=translator)
        automation = build_automation_defs(clearml.account_names(), translator=translator,
                                           **_groups(datasets, training))
        restore = build_sync_definitions(accounts=clearml.account_names())
        core = dg.Definitions(resources={"clearml": clearml}, executor=deployment_executor())
        return dg.Definitions.merge(core, datasets, training, archives, automation, restore)


def _groups(datasets: dg.Definitions, training: dg.Definitions) -> dict[str, str]:
    """The groups the training job and the retraining schedule select: the model's and its training view's,
    as the built assets have them (whatever the translator named them)."""
    [model] = training.assets
    [view_key] = model.dependency_keys
    view = next(a for a in datasets.assets if view_key in a.keys)
    return {"dataset_group": view.group_names_by_key[view_key],
            "training_group": model.group_names_by_key[model.key]}


defs = build_definitions()
