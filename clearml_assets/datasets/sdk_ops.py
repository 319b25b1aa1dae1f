"""ClearML SDK writes for dataset versions; run only inside ``run_in_sdk_process``.

This is the one module of the package that imports ``clearml``, and it does so inside the
functions: the child process sets the account's environment before the import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..types import DatasetVersionSpec, DatasetVersionUpload


def _discard(dataset: Any, reason: str) -> str:
    """Delete a draft version; if the server refuses, mark it failed and archive it.

    Either way ``Dataset.get`` no longer returns it (it skips archived versions), and it is never
    finalized. Returns what was done.
    """
    from clearml import Task

    task = Task.get_task(task_id=dataset.id)
    try:
        if task.delete(delete_artifacts_and_models=True, raise_on_error=True):
            return "deleted"
    except Exception:  # noqa: BLE001 - fall back to failed+archived
        pass
    try:
        task.mark_failed(status_reason=reason[:200], force=True)
    finally:
        task.set_archived(True)
    return "failed+archived"


def create_version(spec: DatasetVersionSpec | Mapping[str, Any]) -> DatasetVersionUpload:
    """Create, fill, upload and finalize one dataset version.

    Args:
        spec: The version to make (a mapping with the same keys is accepted).

    Returns:
        What was stored: ``delta_files``/``delta_bytes`` are the files this version holds itself.

    Raises:
        Whatever failed; the draft is deleted (or failed + archived) first.
    """
    from clearml import Dataset

    spec = DatasetVersionSpec.of(spec)
    folder = Path(spec.folder)
    dataset = Dataset.create(
        dataset_name=spec.name, dataset_project=spec.project, dataset_version=spec.version,
        parent_datasets=list(spec.parents) or None, dataset_tags=list(spec.tags) or None,
        description=spec.description or None, output_uri=spec.output_uri or None)
    try:
        # Dataset.create edits the new task's configuration through a detached copy; without a reload
        # the SDK reads that stale copy and warns "Could not repair dependency graph" for a child version
        dataset._task.reload()
        if not folder.is_dir():
            raise FileNotFoundError(f"staging folder {folder} vanished before upload")
        removed, _added, _modified = dataset.sync_folder(local_path=str(folder))
        dataset.upload(show_progress=False, verbose=False)
        if not dataset.finalize():
            raise RuntimeError(f"ClearML refused to finalize dataset version {dataset.id}")
    except BaseException as exc:
        action = _discard(dataset, f"materialization failed: {exc}")
        raise RuntimeError(f"dataset version {spec.name} {spec.version} ({dataset.id}) failed "
                           f"and was {action}: {type(exc).__name__}: {exc}") from exc
    own = [e for e in dataset.file_entries if e.parent_dataset_id == dataset.id]
    return DatasetVersionUpload(
        id=dataset.id, version=spec.version, delta_files=len(own), delta_bytes=int(sum(e.size or 0 for e in own)),
        removed_files=int(removed or 0), file_count=len(dataset.file_entries),
        total_bytes=int(sum(e.size or 0 for e in dataset.file_entries)))


def local_copy(dataset_id: str, target: str) -> str:
    """Download a finalized dataset version into ``target`` (a folder this process owns)."""
    from clearml import Dataset

    dataset = Dataset.get(dataset_id=dataset_id)
    return dataset.get_mutable_local_copy(target_folder=target, overwrite=True)


def discard_version(dataset_id: str, reason: str = "discarded") -> str:
    """Delete (or fail + archive) a version that must not count as done; returns what was done."""
    from clearml import Dataset

    return _discard(Dataset.get(dataset_id=dataset_id), reason)
