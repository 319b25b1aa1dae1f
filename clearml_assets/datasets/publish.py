"""Dataset versions in ClearML: publish a folder as a version (or reuse one with the same content), read the
newest version, download one, and the metadata every dataset materialization records."""

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import dagster as dg

from ..client import ClearMLClient
from ..errors import ClearMLAssetsError, ClearMLConfigError
from ..resource import AccountChoice, ClearMLResource
from ..sdk_process import SDKProcessError, run_in_sdk_process
from ..types import DatasetVersionSpec
from .config import _DatasetConfig
from .manifest import folder_content_hash
from .versions import (
    FINALIZED_STATUSES, ClearMLDatasetVersion, content_tag, get_dataset_version, list_dataset_versions,
    next_semver,
)


@contextmanager
def _staging(clearml: ClearMLResource, prefix: str) -> Iterator[Path]:
    base = clearml.home_dir() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class PublishedVersion:
    """A dataset version that a materialization produced or reused."""

    version: ClearMLDatasetVersion
    content_hash: str
    file_count: int
    total_bytes: int
    reused: bool
    uploaded_bytes: int
    uploaded_files: int
    parents: list[str]


def publish_folder(clearml: ClearMLResource, account: str | None, *, project: str, name: str, folder: Path,
                   parents: list[str] | None, reuse_any: bool, description: str, timeout: float,
                   log: Any = None) -> PublishedVersion:
    """Make ``folder`` the content of a dataset version, reusing an existing one with the same content.

    Args:
        clearml: The ``ClearMLResource``.
        account: Account name, or None for the default.
        project: Dataset project.
        name: Dataset name.
        folder: The version's full content.
        parents: Parent version ids; None = the newest existing version of ``name``.
        reuse_any: Reuse any finalized version with the same content hash; otherwise only the newest
            (so "newest" always reflects the source).
        description: Description of a new version.
        timeout: Seconds for the SDK child process.
        log: A logger for progress lines.
    """
    client = clearml.client(account)
    content_hash, file_count, total_bytes = folder_content_hash(folder)
    versions = list_dataset_versions(client, project, name)
    candidates = versions if reuse_any else versions[:1]
    for existing in candidates:
        if existing.content_hash == content_hash:
            if log:
                log.info(f"{name}: content {content_hash[:12]} unchanged, reusing version {existing.version} "
                         f"({existing.id}); nothing uploaded")
            return PublishedVersion(existing, content_hash, file_count, total_bytes, True, 0, 0, [])
    if parents is None:
        parents = [versions[0].id] if versions else []
    version = next_semver(versions)
    spec = DatasetVersionSpec(name=name, project=project, version=version, parents=tuple(parents),
                              folder=str(folder), tags=("dagster", content_tag(content_hash)), description=description)
    try:
        result = run_in_sdk_process("clearml_assets.datasets.sdk_ops:create_version", spec,
                                    env=clearml.sdk_env(account), timeout=timeout,
                                    what=f"ClearML dataset version {project}/{name} {version}")
    except SDKProcessError:
        # A child killed on timeout (or by the OOM killer) cannot delete its own draft.
        discard_unfinished_drafts(client, project, name, version, content_tag(content_hash), log)
        raise
    created = get_dataset_version(client, result.id)
    if log:
        log.info(f"{name}: created version {version} ({created.id}), uploaded {result.delta_files} files "
                 f"/ {result.delta_bytes} bytes, removed {result.removed_files}")
    return PublishedVersion(created, content_hash, file_count, total_bytes, False, result.delta_bytes,
                            result.delta_files, parents)


def discard_unfinished_drafts(client: ClearMLClient, project: str, name: str, version: str, tag: str,
                              log: Any = None) -> list[str]:
    """Delete the unfinalized versions ``version`` of ``project/name`` that carry ``tag``.

    Only drafts of this materialization match (the content tag is set when the draft is created),
    so someone else's draft of the same version number is left alone.

    Returns:
        Ids of the deleted drafts.
    """
    deleted = []
    for draft in list_dataset_versions(client, project, name, finalized_only=False):
        if draft.version != version or draft.status in FINALIZED_STATUSES or tag not in draft.tags:
            continue
        try:
            client.tasks.delete(draft.id)
            deleted.append(draft.id)
        except ClearMLAssetsError as exc:
            if log:
                log.warning(f"{name}: could not delete unfinished draft {draft.id} ({exc}); it was never "
                            "finalized, delete it in the ClearML UI.")
    if deleted and log:
        log.info(f"{name}: deleted unfinished draft version(s) {', '.join(deleted)}")
    return deleted


def version_metadata(clearml: ClearMLResource, account: str | AccountChoice | None, project: str,
                     published: PublishedVersion) -> dict[str, Any]:
    """Metadata common to every dataset asset materialization (with the account and what chose it)."""
    version = published.version
    choice = account if isinstance(account, AccountChoice) else None
    client = clearml.client(choice.name if choice else account)
    return {
        "dataset_id": version.id,
        "dataset_project": project,
        "dataset_name": version.name,
        "dataset_version": version.version,
        "clearml_url": dg.MetadataValue.url(client.web_url("dataset", version.id, version.project_id)),
        "clearml_account": client.account,
        "content_hash": published.content_hash,
        "file_count": published.file_count,
        "total_bytes": published.total_bytes,
        "uploaded_bytes": published.uploaded_bytes,
        "uploaded_files": published.uploaded_files,
        "reused_existing_version": published.reused,
        "parent_dataset_ids": ", ".join(published.parents) or "none",
        **(choice.metadata() if choice else {}),
    }


def newest_version_id(clearml: ClearMLResource, account: str | None, project: str, name: str, key: dg.AssetKey) -> str:
    """The id of the newest finalized version of dataset ``project/name``.

    Raises:
        ClearMLConfigError: There is none yet; names the asset to materialize first.
    """
    versions = list_dataset_versions(clearml.client(account), project, name)
    if not versions:
        raise ClearMLConfigError(f"No finalized version of dataset {project}/{name}: materialize "
                                 f"{key.to_user_string()} first.")
    return versions[0].id


def download_version(clearml: ClearMLResource, account: str | None, version_id: str, target: Path,
                     config: _DatasetConfig, kind: str) -> Path:
    """A local copy of a dataset version, fetched with the SDK in a child process for one account."""
    return Path(run_in_sdk_process("clearml_assets.datasets.sdk_ops:local_copy", version_id, str(target),
                                   env=clearml.sdk_env(account), timeout=config.sdk_timeout_seconds,
                                   what=f"download of {kind} dataset version {version_id}"))
