"""Dataset versions made outside Dagster, seen as observations of an observable source asset."""


import warnings

import dagster as dg

from ..resource import ClearMLResource
from .versions import list_dataset_versions


def build_dataset_observation(key: dg.AssetKey, *, project: str, name: str, account: str | None = None,
                              group_name: str = "datasets") -> dg.SourceAsset:
    """An observable source asset whose data version is the newest finalized version of ``project/name``.

    Someone uploading a new version in ClearML (``Dataset.create(...).finalize()``) changes the
    observed data version (its content-hash tag, or its id if it has none), so assets that depend
    on this key show as changed upstream and automation can react.
    """

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _build(key, project, name, account, group_name)


def _build(key: dg.AssetKey, project: str, name: str, account: str | None, group_name: str) -> dg.SourceAsset:
    @dg.observable_source_asset(key=key, group_name=group_name,
                                description=f"Newest finalized version of ClearML dataset {project}/{name}, "
                                            "wherever it was made (Dagster or outside it).")
    def _observe(context, clearml: ClearMLResource) -> dg.ObserveResult:
        choice = clearml.choose_account(None, account)
        client = clearml.client(choice.name)
        versions = list_dataset_versions(client, project, name)
        if not versions:
            return dg.ObserveResult(data_version=dg.DataVersion("none"),
                                    metadata={"versions": 0, "dataset": f"{project}/{name}", **choice.metadata()})
        latest = versions[0]
        return dg.ObserveResult(
            data_version=dg.DataVersion(latest.data_version),
            metadata={
                "dataset_id": latest.id, "dataset_version": latest.version, "versions": len(versions),
                "made_by_dagster": latest.content_hash is not None,
                "clearml_url": dg.MetadataValue.url(client.web_url("dataset", latest.id, latest.project_id)),
                **choice.metadata(),
            })

    return _observe
