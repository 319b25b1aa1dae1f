"""The files of a copy, uploaded to the target account's file server under the copy's prefix (its project and
task, as the SDK would put them): debug images and images plots show, and artifact files."""

from __future__ import annotations

import posixpath
import re
from concurrent.futures import Future
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from . import system_tasks
from .copies import CopyWrite

_PATH_PART = re.compile(r"[^A-Za-z0-9_.-]")


def part(name: str) -> str:
    """``name`` as one safe path part (at most 64 characters, never empty, ``.`` or ``..``)."""
    return _PATH_PART.sub("_", name).strip(".")[:64] or "_"


def basename(url: str | None, fallback: str) -> str:
    """The file name a URL ends with, or ``fallback`` when it names none (or an unsafe one)."""
    name = posixpath.basename(unquote(urlsplit(url or "").path))
    return name if name not in ("", ".", "..") and "\0" not in name else fallback


def copy_prefix(project: str, task_name: str, task_id: str) -> str:
    """Where the copy's files land: under the project it is restored into (``--project``), as the SDK would put
    them."""
    project_path = "/".join(part(p) for p in project.split("/"))
    return f"{project_path}/{part(task_name)}.{task_id}"


def upload(write: CopyWrite, rel: str, path: Path) -> Future:
    """Upload ``path`` to ``<prefix>/<rel>`` in the write's pool: a future of the new URL."""
    write.result.count("uploaded_bytes", path.stat().st_size)
    return write.pool.submit(write.client.files.upload, f"{write.prefix}/{rel}", path)


def upload_images(write: CopyWrite) -> dict[str, Future]:
    """Debug images and images referenced by plots, being uploaded: ``{old URL: future new URL}``."""
    futures: dict[str, Future] = {}
    archive = write.archive
    found = [("debug_image_files", "metrics", event, [(event.get("url"), path)])
             for event, path in archive.debug_image_events()]
    found += [("plot_image_files", "plots", event, files) for event, files in archive.plot_events()]
    for count, folder, event, files in found:
        for url, path in files:
            if path is None or not url or url in futures:
                continue
            rel = "/".join([folder, part(str(event.get("metric", ""))), part(str(event.get("variant", ""))),
                            basename(url, "image")])
            futures[url] = upload(write, rel, path)
            write.result.count(count)
    return futures


def upload_artifacts(write: CopyWrite, scratch: Path, copy_of: Callable[[str], str | None]
                     ) -> list[tuple[dict, Future | None]]:
    """The task's artifacts, their files being uploaded (a dataset version's state naming the copy, through
    ``copy_of``: the id of the copy of a source task)."""
    planned = []
    dataset = system_tasks.is_dataset_version(write.archive.task)
    for artifact, path in write.archive.artifacts():
        artifact = dict(artifact)
        future = None
        if path is not None and dataset:
            path = system_tasks.dataset_state_file(artifact, path, scratch, copy_of, write.result.notes)
        if path is not None:
            rel = f"artifacts/{part(str(artifact.get('key')))}/{basename(artifact.get('uri'), path.name)}"
            future = upload(write, rel, path)
        elif artifact.get("uri"):
            write.result.notes.append(f"artifact {artifact.get('key')!r}: no file in the archive, the URI is kept")
        planned.append((artifact, future))
    return planned


def finish_artifacts(write: CopyWrite, planned: list[tuple[dict, Future | None]]) -> None:
    """Record the artifacts on the copy, each with its uploaded file's URL."""
    for artifact, future in planned:
        if future is not None:
            artifact["uri"] = future.result()
    if planned:
        write.client.tasks.add_artifacts(write.task_id, [a for a, _ in planned])
    write.result.counts["artifacts"] = len(planned)
    write.result.counts["artifact_files"] = sum(1 for _, u in planned if u is not None)
