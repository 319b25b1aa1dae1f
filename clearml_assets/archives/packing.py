"""One archive file per export folder (zip or tar.gz), its sha256, verification and safe extraction.

Packing reads each file once: the bytes are hashed as they are archived and compared with the manifest,
so an archive whose content differs from the manifest is never published. The archive's own sha256 is
computed from the bytes as they are written (the zip is written in streaming mode).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

from ..errors import ArchiveError
from .manifest import MANIFEST_NAME

ArchiveFormat = Literal["zip", "tar.gz", "tar"]
ARCHIVE_FORMATS: tuple[str, ...] = ("zip", "tar.gz", "tar")
_CHUNK = 1 << 20
# already compressed (or binary) content is stored as is: deflating it costs CPU for nothing
_DEFLATE_SUFFIXES = frozenset({".json", ".jsonl", ".log", ".txt", ".csv", ".html", ".yaml", ".yml", ".md"})


def archive_suffix(fmt: str) -> str:
    """File suffix of an archive format (``.zip``, ``.tar.gz``, ``.tar``)."""
    if fmt not in ARCHIVE_FORMATS:
        raise ArchiveError(f"unknown archive format {fmt!r}; use one of {', '.join(ARCHIVE_FORMATS)}")
    return "." + fmt


class _HashingWriter:
    """A write-only, non-seekable file wrapper that hashes and counts what goes through it."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self._raw.write(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()


class _HashingReader:
    """Reads a file and hashes the bytes read."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def write_archive(folder: Path, dest: Path, files: dict[str, dict[str, Any]], fmt: str = "zip",
                  arcroot: str | None = None, compresslevel: int = 1) -> dict[str, Any]:
    """Pack ``folder`` into ``dest``, checking every file against ``files`` (the manifest entries).

    Args:
        folder: The export folder.
        dest: The archive file to write (usually a temporary name, renamed by the caller).
        files: ``{relative path: {"size", "sha256"}}``; ``manifest.json`` is added as well.
        fmt: ``zip`` (text deflated, binaries stored), ``tar.gz`` or ``tar``.
        arcroot: Top folder inside the archive (default: ``folder``'s name).
        compresslevel: zlib level for deflated entries / gzip.

    Returns:
        ``{"file", "format", "size", "sha256", "entries"}``.

    Raises:
        ArchiveError: a file changed or vanished between hashing and packing.
    """
    arcroot = arcroot or folder.name
    names = sorted(files) + [MANIFEST_NAME]
    with open(dest, "wb") as raw:
        out = _HashingWriter(raw)
        if fmt == "zip":
            with zipfile.ZipFile(out, "w", allowZip64=True) as zf:  # type: ignore[arg-type]
                for rel in names:
                    _add_zip(zf, folder, rel, arcroot, files.get(rel), compresslevel)
        elif fmt in ("tar.gz", "tar"):
            gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=compresslevel, mtime=0) \
                if fmt == "tar.gz" else None
            with tarfile.open(fileobj=gz or out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[arg-type]
                for rel in names:
                    _add_tar(tf, folder, rel, arcroot, files.get(rel))
            if gz is not None:
                gz.close()
        else:
            archive_suffix(fmt)
        raw.flush()
        os.fsync(raw.fileno())
    return {"file": dest.name, "format": fmt, "size": out.size, "sha256": out.digest.hexdigest(),
            "entries": len(names)}


def _check(rel: str, reader: _HashingReader, expected: dict | None) -> None:
    if expected is None:
        return
    if reader.size != expected["size"] or reader.digest.hexdigest() != expected["sha256"]:
        raise ArchiveError(f"{rel} changed while it was being archived (size {reader.size}, expected "
                           f"{expected['size']}); re-run the export")


def _add_zip(zf: zipfile.ZipFile, folder: Path, rel: str, arcroot: str, expected: dict | None,
             level: int) -> None:
    path = folder / rel
    size = path.stat().st_size
    info = zipfile.ZipInfo(f"{arcroot}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    if PurePosixPath(rel).suffix.lower() in _DEFLATE_SUFFIXES:
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = level  # noqa: SLF001 - the public way (ZipFile(compresslevel=)) is per archive
    else:
        info.compress_type = zipfile.ZIP_STORED
    with open(path, "rb") as src, zf.open(info, "w", force_zip64=size >= (1 << 31) - (1 << 20)) as dst:
        reader = _HashingReader(src)
        while chunk := reader.read(_CHUNK):
            dst.write(chunk)
    _check(rel, reader, expected)


def _add_tar(tf: tarfile.TarFile, folder: Path, rel: str, arcroot: str, expected: dict | None) -> None:
    path = folder / rel
    info = tarfile.TarInfo(f"{arcroot}/{rel}")
    info.size = path.stat().st_size
    info.mode = 0o644
    info.mtime = 0
    with open(path, "rb") as src:
        reader = _HashingReader(src)
        tf.addfile(info, reader)  # type: ignore[arg-type]
    _check(rel, reader, expected)


def archive_format_of(path: Path) -> str:
    """The format of an archive file, from its name."""
    name = Path(path).name
    for fmt in ("tar.gz", "zip", "tar"):
        if name.endswith("." + fmt):
            return fmt
    raise ArchiveError(f"{name!r} is not a .zip, .tar.gz or .tar archive")


def iter_archive_members(path: Path):
    """Yield ``(member name, hashing of its bytes -> (sha256, size))`` for every file in the archive."""
    fmt = archive_format_of(path)
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                with zf.open(info) as handle:
                    yield info.filename, _digest_stream(handle)
    else:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                handle = tf.extractfile(member)
                yield member.name, _digest_stream(handle)


def _digest_stream(handle) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def verify_archive(path: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found re-reading the archive against ``manifest`` (empty list: archive is intact).

    Checks the archive's own size and sha256 (when the manifest records them), then every member's size
    and sha256 against the manifest's ``files``; extra or missing members are problems too.
    """
    problems: list[str] = []
    path = Path(path)
    info = manifest.get("archive") or {}
    if not path.exists():
        return [f"archive {path.name} is missing"]
    if info.get("sha256"):
        digest, size = _digest_stream(open(path, "rb"))
        if size != info.get("size") or digest != info["sha256"]:
            problems.append(f"archive {path.name}: sha256 {digest[:12]} / {size} bytes != recorded "
                            f"{info['sha256'][:12]} / {info.get('size')}")
    expected = dict(manifest.get("files", {}))
    seen: set[str] = set()
    try:
        for name, (digest, size) in iter_archive_members(path):
            rel = name.split("/", 1)[1] if "/" in name else name
            seen.add(rel)
            if rel == MANIFEST_NAME:
                continue
            entry = expected.get(rel)
            if entry is None:
                problems.append(f"unexpected member {name}")
            elif entry["size"] != size or entry["sha256"] != digest:
                problems.append(f"member {rel}: {size} bytes sha256 {digest[:12]} != manifest "
                                f"{entry['size']} / {entry['sha256'][:12]}")
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        problems.append(f"archive {path.name} is unreadable: {exc}")
    for rel in sorted(set(expected) - seen):
        problems.append(f"missing member {rel}")
    return problems


def _safe_member(name: str, target: Path) -> Path:
    if not name or "\0" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"archive member {name!r} has an absolute or invalid path; refusing to extract")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if any(p == ".." for p in parts):
        raise ArchiveError(f"archive member {name!r} escapes the target folder; refusing to extract")
    dest = Path(os.path.normpath(target.joinpath(*parts)))
    if target != dest and target not in dest.parents:
        raise ArchiveError(f"archive member {name!r} escapes {str(target)!r}; refusing to extract")
    real = dest.resolve()  # a link already in the target folder must not lead a member out of it
    if target != real and target not in real.parents:
        raise ArchiveError(f"archive member {name!r} would be written through a link to {str(real)!r}, "
                           f"outside {str(target)!r}; refusing to extract")
    return dest


def _check_room(total: int, target: Path, max_bytes: int | None, path: Path) -> None:
    limit = max_bytes if max_bytes is not None else shutil.disk_usage(target).free
    if total > limit:
        raise ArchiveError(f"archive {Path(path).name!r} unpacks to {total} bytes, more than the {limit} bytes "
                           f"allowed in {str(target)!r}; refusing to extract (free space or pass max_bytes)")


def extract_archive(path: Path, target: Path, max_bytes: int | None = None) -> list[Path]:
    """Extract a zip/tar archive into ``target``, refusing members that would land outside it.

    Links, devices and other special members are refused too, and so is an archive whose members add up
    to more than ``max_bytes`` (default: the free space under ``target``). Every member is checked before
    anything is written.

    Returns:
        The extracted file paths.
    """
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    if archive_format_of(path) == "zip":
        return _extract_zip(path, target, max_bytes)
    return _extract_tar(path, target, max_bytes)


def _extract_zip(path: Path, target: Path, max_bytes: int | None) -> list[Path]:
    written: list[Path] = []
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            mode = info.external_attr >> 16
            if mode and stat.S_ISLNK(mode):
                raise ArchiveError(f"archive member {info.filename!r} is a symlink; refusing to extract")
            _safe_member(info.filename, target)
        _check_room(sum(i.file_size for i in infos), target, max_bytes, path)  # reads stop at file_size
        for info in infos:
            dest = _safe_member(info.filename, target)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
            written.append(dest)
    return written


def _extract_tar(path: Path, target: Path, max_bytes: int | None) -> list[Path]:
    """Every member checked first (links refused, then the standard library's ``data`` filter: no
    absolute path, nothing outside ``target``, no special file), then extracted with that filter."""
    with tarfile.open(path, "r:*") as tf:
        members = tf.getmembers()
        for member in members:
            if not (member.isfile() or member.isdir()):
                raise ArchiveError(f"archive member {member.name!r} is a link or special file; "
                                   "refusing to extract")
            try:
                tarfile.data_filter(member, str(target))
            except tarfile.FilterError as exc:
                raise ArchiveError(f"archive member {member.name!r} escapes {str(target)!r} or is unsafe "
                                   f"({exc}); refusing to extract") from exc
            _safe_member(member.name, target)  # also refuses writing through a link already in target
        _check_room(sum(m.size for m in members if m.isfile()), target, max_bytes, path)
        tf.extractall(target, members=members, filter="data")
    return [Path(os.path.normpath(target / m.name)) for m in members if m.isfile()]
