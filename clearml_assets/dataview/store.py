"""The local cache of dataset files: verified downloads, chunk extraction, safe paths.

A ClearML dataset version stores its files in zip chunks (task artifacts ``data``, ``data_001``, ...) of the
version that added them; ``state.json`` (artifact ``state``) lists every file with the version and chunk that
hold it, its size and its SHA-256. Files land in ``<cache>/<version id>/<chunk>/<relative path>``: shared by
every version that inherits them, each one checked against ``state.json`` before it is renamed into place, so
a file that exists there is whole and verified (and another process, e.g. a DataLoader worker, may use it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..storage.credentials import client_storage_options
from ..storage.recorded import fetch_object, locate

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_UNSAFE_CHARACTER = re.compile(r"[\x00-\x1f\\]")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COPY_BLOCK = 1 << 20


class FetchError(Exception):
    """A file of a dataset version could not be fetched; the message says which and why."""


@dataclass(frozen=True)
class StoredFile:
    """One file of a dataset version as ``state.json`` lists it."""

    relative_path: str
    size: int | None
    sha256: str | None
    dataset_id: str  # the version whose chunk holds it
    artifact: str  # that chunk's artifact name ("" for a link)
    link: str = ""  # an external URL (``add_external_files``) instead of a chunk


@dataclass(frozen=True)
class Chunk:
    """One zip chunk of a dataset version (a task artifact)."""

    dataset_id: str
    artifact: str
    url: str
    size: int | None
    sha256: str | None


def safe_relative(path: str) -> PurePosixPath | None:
    """``path`` as a relative POSIX path that stays inside its folder, or None (absolute, ``..``, backslashes,
    empty or control characters: a name from a server is never trusted to build a path)."""
    if not isinstance(path, str) or not path or _UNSAFE_CHARACTER.search(path):
        return None
    rel = PurePosixPath(path)
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts) or len(path) > 4096:
        return None
    return rel


def expected_sha256(value: object) -> str | None:
    """A recorded hash when it is a SHA-256 hex digest (the SDK may record others; those are not checked)."""
    return value.lower() if isinstance(value, str) and _SHA256.match(value.lower()) else None


def download_verified(client, url: str, dest: Path, *, size: int | None, sha256: str | None, what: str) -> Path:
    """Fetch a recorded URL to ``dest``: the account's fileserver with its token, object storage with the
    account's storage credentials for that endpoint, nothing else; size and SHA-256 checked before the rename.

    Raises:
        FetchError: Naming ``what``, the URL and the reason.
    """
    where = locate(client, url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        if where.kind == "fileserver":
            client.files.download(where.url, tmp, digest=digest)
        elif where.kind == "object_store":
            fetch_object(where.url, tmp, {where.url: client_storage_options(client, where.url)}, digest=digest)
        else:
            raise FetchError(f"{what} ({url}) is not fetched: {where.reason}")
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise FetchError(f"{what} ({url}) has {got} bytes, ClearML recorded {size}")
        if sha256 and digest.hexdigest() != sha256:
            raise FetchError(f"{what} ({url}) does not match the SHA-256 ClearML recorded for it")
        os.replace(tmp, dest)
        return dest
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the client's, the object store's and the OS's errors alike
        raise FetchError(f"{what} ({url}) could not be downloaded: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


class FileStore:
    """Where the files of one server's dataset versions are kept, and how they get there."""

    def __init__(self, root: Path, client_source):
        self.root = Path(root)
        self._client_source = client_source  # a callable returning the account's client (made on demand)

    def path_of(self, stored: StoredFile) -> Path:
        """The local path of a file (it exists only once fetched and verified)."""
        rel = safe_relative(stored.relative_path)
        if rel is None or not SAFE_NAME.match(stored.dataset_id):
            raise FetchError(f"unsafe file name {stored.relative_path!r} in dataset version {stored.dataset_id!r}")
        if stored.link:
            key = hashlib.sha256(stored.link.encode()).hexdigest()[:24]
            return self.root / stored.dataset_id / "links" / key / rel.name
        return self.root / stored.dataset_id / stored.artifact / rel

    def fetch_chunk(self, chunk: Chunk, members: list[StoredFile]) -> dict[str, str]:
        """Download ``chunk`` and place the ``members`` not yet here; returns the problem per member that
        could not be placed (empty: all are here).

        Raises:
            FetchError: The chunk itself could not be downloaded or read.
        """
        missing = [(m, target) for m in members if not (target := self.path_of(m)).is_file()]
        if not missing:
            return {}
        with tempfile.TemporaryDirectory(prefix=".chunk-", dir=self._scratch()) as scratch:
            archive = download_verified(self._client_source(), chunk.url, Path(scratch) / "chunk.zip",
                                        size=chunk.size, sha256=chunk.sha256,
                                        what=f"chunk {chunk.artifact!r} of dataset version {chunk.dataset_id}")
            made: set[Path] = set()  # folders created by this fetch (one mkdir per folder, not per file)
            try:
                with zipfile.ZipFile(archive) as zipped:
                    return {m.relative_path: problem for m, target in missing
                            if (problem := self._extract(zipped, m, target, Path(scratch), made))}
            except (zipfile.BadZipFile, OSError) as exc:
                raise FetchError(f"chunk {chunk.artifact!r} of dataset version {chunk.dataset_id} ({chunk.url}) "
                                 f"is not a readable zip: {exc}") from None

    def fetch_link(self, stored: StoredFile) -> None:
        """Fetch a linked (external) file of a version into place."""
        download_verified(self._client_source(), stored.link, self.path_of(stored), size=stored.size,
                          sha256=stored.sha256, what=f"linked file {stored.relative_path!r}")

    def _extract(self, zipped: zipfile.ZipFile, stored: StoredFile, target: Path, scratch: Path,
                 made: set[Path]) -> str:
        """Copy one member out of the chunk, no more bytes than recorded, hash checked; "" or the problem."""
        try:
            info = zipped.getinfo(stored.relative_path)
        except KeyError:
            return "the chunk ClearML names for it does not contain it"
        limit = stored.size if stored.size is not None else info.file_size
        if info.file_size != limit:
            return f"the chunk holds {info.file_size} bytes for it, ClearML recorded {limit}"
        digest, part = hashlib.sha256(), scratch / "member.part"
        with zipped.open(info) as src, open(part, "wb") as out:
            copied = 0
            while block := src.read(min(_COPY_BLOCK, limit - copied + 1)):
                copied += len(block)
                if copied > limit:
                    return f"the chunk holds more than the {limit} bytes ClearML recorded for it"
                digest.update(block)
                out.write(block)
        if stored.sha256 and digest.hexdigest() != stored.sha256:
            return "its bytes in the chunk do not match the SHA-256 ClearML recorded for it"
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        os.replace(part, target)
        return ""

    def _scratch(self) -> Path:
        scratch = self.root / ".scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch

    def clear(self) -> None:
        """Remove every cached file of this server."""
        shutil.rmtree(self.root, ignore_errors=True)
