"""Unpacking an archive safely: every member's destination checked inside the target, the archive's index checked
against a byte budget before anything is written, and every byte written (or decompressed, for a tar's headers)
counted against it. The codec table in :mod:`.packing` pairs these extractors with the writers."""

from __future__ import annotations

import math
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

from ..errors import ArchiveError
from . import bounds

_CHUNK = 1 << 20
#: The longest path an extracted member may have (Linux allows 4096 bytes in all).
MAX_MEMBER_PATH_BYTES = 4000


class Destinations:
    """Where each member of an archive goes inside ``target``, refusing any that would land outside it.

    The real path of every parent folder is resolved once (a link already in ``target`` must not lead a
    member out of it), so checking a hundred thousand members costs a hundred thousand ``lstat`` calls,
    not ``realpath`` walks.
    """

    def __init__(self, target: Path):
        self.target = target
        self._real: dict[Path, Path] = {}

    def of(self, name: str) -> Path:
        """The path member ``name`` is written to.

        Raises:
            ArchiveError: The name is absolute, climbs out, is too long, or leads through a link outside.
        """
        target = self.target
        if not name or "\0" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise ArchiveError(f"archive member {name[:200]!r} has an absolute or invalid path; refusing to extract")
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if any(p == ".." for p in parts):
            raise ArchiveError(f"archive member {name[:200]!r} escapes the target folder; refusing to extract")
        dest = Path(os.path.normpath(target.joinpath(*parts)))
        if target != dest and target not in dest.parents:
            raise ArchiveError(f"archive member {name[:200]!r} escapes {str(target)!r}; refusing to extract")
        if len(os.fsencode(dest)) > MAX_MEMBER_PATH_BYTES or any(len(os.fsencode(p)) > 255 for p in parts):
            raise ArchiveError(f"archive member {name[:200]!r}... has a path of {len(os.fsencode(name))} bytes or "
                               f"a name part over 255 bytes: too long to unpack under {str(target)!r}; refusing "
                               "to extract")
        real = self._real_parent(dest.parent) / dest.name if dest != target else target
        if os.path.islink(real):
            real = real.resolve()
        if target != real and target not in real.parents:
            raise ArchiveError(f"archive member {name[:200]!r} would be written through a link to {str(real)!r}, "
                               f"outside {str(target)!r}; refusing to extract")
        return dest

    def _real_parent(self, folder: Path) -> Path:
        real = self._real.get(folder)
        if real is None:
            real = self._real[folder] = folder.resolve()
        return real


@dataclass
class ExtractBudget:
    """What one extraction may write: the archive's index is checked against it before anything is written,
    and every byte written is counted against it.

    Attributes:
        path: The archive.
        target: Where it is unpacked.
        limit: Bytes that may be written (``max_bytes``, else the free space under ``target``).
        allowance: Bytes (members plus overhead) the archive may unpack to for its size
            (:func:`.bounds.unpack_allowance`).
    """

    path: Path
    target: Path
    limit: int
    allowance: int
    written: int = 0

    @classmethod
    def of(cls, path: Path, target: Path, max_bytes: int | None) -> "ExtractBudget":
        limit = max_bytes if max_bytes is not None else shutil.disk_usage(target).free
        return cls(Path(path), target, limit, bounds.unpack_allowance(Path(path).stat().st_size))

    @property
    def stream_limit(self) -> int:
        """The most decompressed bytes read while looking through a tar stream's headers."""
        return self.allowance + (1 << 20)  # headers take less than the overhead charged per member

    def check_index(self, total: int, members: int) -> None:
        """Refuse an archive whose members add up to more than the limit or the allowance for its size."""
        name, size = self.path.name, self.path.stat().st_size
        if total > self.limit:
            raise ArchiveError(f"archive {name!r} unpacks to {total} bytes, more than the {self.limit} bytes "
                               f"allowed in {str(self.target)!r}; refusing to extract (free space or pass "
                               "max_bytes)")
        charged = total + bounds.MEMBER_OVERHEAD * members
        if charged > self.allowance:
            ratio = charged / max(size, 1)
            raise ArchiveError(
                f"archive {name!r} would unpack to {total} bytes in {members} members, {ratio:.0f} times its own "
                f"{size} bytes (more than {bounds.unpack_max_ratio()} times, above "
                f"{bounds.UNPACK_RATIO_FLOOR} bytes): refused as a possible decompression bomb before anything "
                f"was written. If you made it and trust it, set {bounds.UNPACK_RATIO_ENV}={math.ceil(ratio)}")

    def copy(self, src: BinaryIO, dest: Path) -> None:
        """Write ``src`` to ``dest``, every byte counted against the limit."""
        with open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                self.written += len(chunk)
                if self.written > self.limit:
                    raise ArchiveError(f"archive {self.path.name!r} wrote more than the {self.limit} bytes its "
                                       "index announced or allowed; refusing the rest (nothing is kept)")
                out.write(chunk)


class BoundedStream:
    """A read-only stream that fails once more than ``limit`` bytes were read from it (a tar's decompressed
    data: its headers can only be read by decompressing what lies between them)."""

    def __init__(self, raw: BinaryIO, limit: int, path: Path):
        self._raw, self._limit, self._path, self.read_bytes = raw, limit, path, 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else _CHUNK)
        self.read_bytes += len(data)
        if self.read_bytes > self._limit:
            raise ArchiveError(f"archive {self._path.name!r} decompresses to more than {self._limit} bytes, over "
                               f"{bounds.unpack_max_ratio()} times its size: refused as a possible decompression "
                               f"bomb before anything was written (set {bounds.UNPACK_RATIO_ENV} to allow more)")
        return data


def extract_zip(path: Path, target: Path, budget: ExtractBudget, written: list[Path]) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        budget.check_index(sum(i.file_size for i in infos), len(infos))  # reads stop at file_size
        places = Destinations(target)
        for info in infos:
            mode = info.external_attr >> 16
            if mode and stat.S_ISLNK(mode):
                raise ArchiveError(f"archive member {info.filename[:200]!r} is a symlink; refusing to extract")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                raise ArchiveError(f"archive member {info.filename[:200]!r} is encrypted or uses zip compression "
                                   f"method {info.compress_type}; archives made by clearml-assets are stored or "
                                   "deflated only: refusing to extract")
            places.of(info.filename)
        for info in infos:
            dest = places.of(info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            written.append(dest)
            with zf.open(info) as src:
                budget.copy(src, dest)


def _check_tar_member(member: tarfile.TarInfo, places: Destinations) -> Path:
    """Where a tar member goes: regular files and folders only (links, devices and fifos refused)."""
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"archive member {member.name[:200]!r} is a link or special file; refusing to extract")
    return places.of(member.name)


def tar_extractor(decompressed: Callable[[Path], BinaryIO]) -> Callable[[Path, Path, ExtractBudget, list[Path]], None]:
    """Extraction of a tar read through ``decompressed(path)``, in two bounded passes over the stream: the
    headers first (sizes added up, then every member checked), then the data."""

    def extract(path: Path, target: Path, budget: ExtractBudget, written: list[Path]) -> None:
        members = list(_tar_stream(path, decompressed, budget))
        budget.check_index(sum(m.size for m in members if m.isfile()), len(members))
        places = Destinations(target)
        for member in members:
            _check_tar_member(member, places)
        with decompressed(path) as raw, tarfile.open(fileobj=BoundedStream(raw, budget.stream_limit, path),
                                                     mode="r|") as tf:
            for member in tf:
                dest = _check_tar_member(member, places)
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                written.append(dest)
                budget.copy(tf.extractfile(member), dest)  # type: ignore[arg-type]

    return extract


def _tar_stream(path: Path, decompressed: Callable[[Path], BinaryIO], budget: ExtractBudget) -> Iterator[tarfile.TarInfo]:
    with decompressed(path) as raw, tarfile.open(fileobj=BoundedStream(raw, budget.stream_limit, path),
                                                 mode="r|") as tf:
        yield from tf
