"""Copy dataset versions with their parent chain from one ClearML account into another.

The source chain is read and downloaded in an SDK child configured for the source account, the missing
versions are created in an SDK child configured for the target (each with its full content, so its
stored delta is relative to its restored parent, and ``Dataset.get(...).get_local_copy()`` in the target
gives the same files). Each copy carries the tag ``restored-from:<source id>``: a version already copied
and finalized is reused, a draft left by a copy that died is deleted and made again.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from ..resource import ClearMLResource
from ..sdk_process import run_in_sdk_process
from .engine import provenance_tag

FINALIZED = ("completed", "published", "closed")


def copy_dataset_version(clearml: ClearMLResource, source: str, target: str, dataset_id: str, *,
                         project: str | None = None, timeout: float = 3600.0) -> list[dict[str, Any]]:
    """Copy dataset version ``dataset_id`` of ``source`` and its ancestors into ``target``.

    Args:
        clearml: The resource holding both accounts.
        source: Account the version is read from.
        target: Account it is copied into.
        dataset_id: The source version (its parents are copied first).
        project: Dataset project in the target; default: the source version's.
        timeout: Seconds each SDK child may take.

    Returns:
        One row per version, parents first: ``source_id``, ``id`` (target), ``version``, ``unchanged``.

    Raises:
        SDKProcessError: Reading or writing a version failed (nothing half-made is left finalized).
    """
    client = clearml.client(target)
    staging = tempfile.mkdtemp(prefix="clearml-dataset-copy-", dir=clearml.home_dir())
    try:
        chain = run_in_sdk_process("clearml_assets.restore.sdk_datasets:read_chain", dataset_id, staging,
                                   env=clearml.sdk_env(source), timeout=timeout,
                                   what=f"reading dataset version {dataset_id} of account {source!r}")
        known: dict[str, str] = {}
        for spec in chain:
            tag = provenance_tag(spec["id"])
            for row in client.tasks.find_by_tag(tag):
                if row.get("status") in FINALIZED and spec["id"] not in known:
                    known[spec["id"]] = row["id"]
                elif row.get("status") not in FINALIZED:
                    # a draft of a copy that died: never finalized, made again
                    client.tasks.delete(row["id"], with_outputs=True)
            spec["tags"] = [t for t in spec["tags"] if not t.startswith("restored-from:")] + [tag]
            if project:
                spec["project"] = project
        reused = set(known)
        mapping = run_in_sdk_process("clearml_assets.restore.sdk_datasets:write_chain", chain, known,
                                     env=clearml.sdk_env(target), timeout=timeout,
                                     what=f"writing dataset version {dataset_id} into account {target!r}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [{"source_id": s["id"], "id": mapping[s["id"]], "name": s["name"], "version": s["version"],
             "unchanged": s["id"] in reused} for s in chain]
