"""One archive file per export folder (zip or tar.gz), its sha256, verification and safe extraction.

Packing reads each file once: the bytes are hashed as they are archived and compared with the manifest,
so an archive whose content differs from the manifest is never published. The archive's own sha256 is
computed from the bytes as they are written (the zip is written in streaming mode).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import lzma
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ..errors import ArchiveError
from .manifest import MANIFEST_NAME, list_files
from .unpacking import ExtractBudget, extract_zip, tar_extractor

_CHUNK = 1 << 20
# what a damaged archive raises while it is read, whatever its format
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError, zlib.error)
# ...and what a crafted one can make the standard library raise while it is unpacked (an encrypted zip
# member: RuntimeError; an impossible offset or field: ValueError)
_EXTRACT_ERRORS = (*_READ_ERRORS, ValueError, RuntimeError, NotImplementedError)
# already compressed (or binary) content is stored as is: deflating it costs CPU for nothing
_DEFLATE_SUFFIXES = frozenset({".json", ".jsonl", ".log", ".txt", ".csv", ".html", ".yaml", ".yml", ".md"})


def archive_suffix(fmt: str) -> str:
    """File suffix of an archive format (``.zip``, ``.tar.gz``, ...)."""
    _codec(fmt)
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
        fmt: One of :data:`ARCHIVE_FORMATS`: ``zip`` (text deflated, binaries stored), ``tar.gz``, ``tar.xz``
            or ``tar``.
        arcroot: Top folder inside the archive (default: ``folder``'s name).
        compresslevel: Compression level of deflated zip entries, or of the whole gzip/xz stream.

    Returns:
        ``{"file", "format", "size", "sha256", "entries"}``.

    Raises:
        ArchiveError: a file changed or vanished between hashing and packing.
    """
    names = sorted(files) + [MANIFEST_NAME]
    return _pack(dest, fmt, _Entries(folder, names, arcroot or folder.name, files), compresslevel, len(names))


def pack_folder(folder: Path, dest: Path, known: dict[str, dict[str, Any]],
                finish: Callable[[dict[str, dict[str, Any]]], None], fmt: str = "zip", arcroot: str | None = None,
                compresslevel: int = 1) -> dict[str, Any]:
    """Pack every file of ``folder`` into ``dest``, hashing each file as it is packed (one read of it), then
    ``finish(files)`` (``{relative path: {"size", "sha256"}}`` of every file packed) writes ``manifest.json``, which
    is packed last. Files in ``known`` (hashed when they were downloaded) are checked against their entry.

    Returns:
        As :func:`write_archive`.

    Raises:
        ArchiveError: a known file differs from its entry.
    """
    codec = _codec(fmt)  # an unknown format fails before the folder is listed
    names = list_files(folder)
    hashed: dict[str, dict[str, Any]] = {}

    def then_manifest() -> Iterator[str]:
        yield from names
        finish(dict(hashed))
        yield MANIFEST_NAME

    return _pack(dest, fmt, _Entries(folder, then_manifest(), arcroot or folder.name, known, hashed),
                 compresslevel, len(names) + 1, codec)


def _pack(dest: Path, fmt: str, entries: "_Entries", compresslevel: int, count: int,
          codec: "ArchiveCodec | None" = None) -> dict[str, Any]:
    """Write ``entries`` to ``dest`` (synced) in format ``fmt``; the archive's ``{"file", "format", "size",
    "sha256", "entries"}`` (``count`` entries)."""
    codec = codec or _codec(fmt)
    with open(dest, "wb") as raw:
        out = _HashingWriter(raw)
        codec.pack(out, entries, compresslevel)
        raw.flush()
        os.fsync(raw.fileno())
    return {"file": dest.name, "format": fmt, "size": out.size, "sha256": out.digest.hexdigest(), "entries": count}


@dataclass(frozen=True)
class _Entries:
    """The files one archive holds: names relative to ``folder``, their manifest entries, the top folder, and
    (``hashed``) where the size and sha256 of every file packed are recorded."""

    folder: Path
    names: Iterable[str]
    arcroot: str
    files: dict[str, dict[str, Any]]
    hashed: dict[str, dict[str, Any]] | None = None


def _check(rel: str, reader: _HashingReader, expected: dict | None,
           hashed: dict[str, dict[str, Any]] | None = None) -> None:
    sha256 = reader.digest.hexdigest()
    if expected is not None and (reader.size != expected["size"] or sha256 != expected["sha256"]):
        raise ArchiveError(f"{rel} changed while it was being archived (size {reader.size}, expected "
                           f"{expected['size']}); re-run the export")
    if hashed is not None and rel != MANIFEST_NAME:  # a known entry is kept as it is (one dict a file)
        hashed[rel] = expected if expected is not None else {"size": reader.size, "sha256": sha256}


def _pack_zip(out: BinaryIO, entries: _Entries, level: int) -> None:
    with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
        for rel in entries.names:
            _add_zip(zf, entries.folder, rel, entries.arcroot, entries.files.get(rel), level, entries.hashed)


def _tar_packer(compress: Callable[[BinaryIO, int], Any] | None) -> Callable[[BinaryIO, _Entries, int], None]:
    """A tar writer, through ``compress(out, level)`` (a file object closed after the tar) when given."""

    def pack(out: BinaryIO, entries: _Entries, level: int) -> None:
        stream = compress(out, level) if compress else out
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for rel in entries.names:
                _add_tar(tf, entries.folder, rel, entries.arcroot, entries.files.get(rel), entries.hashed)
        if compress:
            stream.close()  # flushes the compressor's trailer; ``out`` itself stays open

    return pack


def _add_zip(zf: zipfile.ZipFile, folder: Path, rel: str, arcroot: str, expected: dict | None,
             level: int, hashed: dict | None = None) -> None:
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
    _check(rel, reader, expected, hashed)


def _add_tar(tf: tarfile.TarFile, folder: Path, rel: str, arcroot: str, expected: dict | None,
             hashed: dict | None = None) -> None:
    path = folder / rel
    info = tarfile.TarInfo(f"{arcroot}/{rel}")
    info.size = path.stat().st_size
    info.mode = 0o644
    info.mtime = 0
    with open(path, "rb") as src:
        reader = _HashingReader(src)
        tf.addfile(info, reader)  # type: ignore[arg-type]
    _check(rel, reader, expected, hashed)


def archive_format_of(path: Path) -> str:
    """The format of an archive file, from its name."""
    name = Path(path).name
    for fmt in sorted(ARCHIVE_CODECS, key=len, reverse=True):
        if name.endswith("." + fmt):
            return fmt
    raise ArchiveError(f"{name!r} is not an archive of a known format ({_suffixes()})")


def iter_archive_members(path: Path):
    """Yield ``(member name, hashing of its bytes -> (sha256, size))`` for every file in the archive."""
    for name, handle in ARCHIVE_CODECS[archive_format_of(path)].members(path):
        yield name, _digest_stream(handle)


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
    except _READ_ERRORS as exc:
        problems.append(f"archive {path.name} is unreadable: {exc}")
    for rel in sorted(set(expected) - seen):
        problems.append(f"missing member {rel}")
    return problems


def extract_archive(path: Path, target: Path, max_bytes: int | None = None) -> list[Path]:
    """Extract a zip/tar archive into ``target``, refusing members that would land outside it.

    Links, devices and other special members are refused too, and so is an archive whose index (member
    sizes) adds up to more than ``max_bytes`` (default: the free space under ``target``) or, above
    :data:`.bounds.UNPACK_RATIO_FLOOR`, to more than :func:`.bounds.unpack_max_ratio` times the archive's
    own size. Every member is checked before anything is written, and every byte written is counted. A
    damaged archive, or one that cannot be written, raises a one-line :class:`ArchiveError` naming it, and
    what was written of it is removed.

    Returns:
        The extracted file paths.
    """
    path = Path(path)
    codec = ARCHIVE_CODECS[archive_format_of(path)]
    target = Path(target).resolve()
    written: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        codec.extract(path, target, ExtractBudget.of(path, target, max_bytes), written)
    except BaseException as exc:
        for file in written:
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)
        if isinstance(exc, ArchiveError) and repr(path.name) not in str(exc):
            raise ArchiveError(f"archive {path.name!r}: {exc}") from None  # a member's fault: name the file
        if isinstance(exc, _EXTRACT_ERRORS) and not isinstance(exc, ArchiveError):
            raise _unreadable(path, target, exc) from None
        raise
    return written


def _unreadable(path: Path, target: Path, exc: BaseException) -> ArchiveError:
    """The one-line error for an archive that could not be read or written."""
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None:
        return ArchiveError(f"archive {path.name!r} could not be unpacked into {str(target)!r}: "
                            f"{type(exc).__name__}: {detail}; nothing of it was kept")
    return ArchiveError(f"archive {path.name!r} is damaged or not a .{archive_format_of(path)} archive "
                        f"({type(exc).__name__}: {detail}); nothing was unpacked from it. Copy it again or "
                        "export it again")


def _zip_members(path: Path) -> Iterator[tuple[str, BinaryIO]]:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                with zf.open(info) as handle:
                    yield info.filename, handle


def _tar_members(path: Path) -> Iterator[tuple[str, BinaryIO]]:
    with tarfile.open(path, "r:*") as tf:  # detects the compression itself
        for member in tf:
            if member.isfile():
                yield member.name, tf.extractfile(member)


@dataclass(frozen=True)
class ArchiveCodec:
    """How one archive format is written, read back and extracted.

    Attributes:
        pack: Writes the entries into a (non-seekable) stream, at a compression level.
        members: Yields ``(member name, readable handle)`` of every file in an archive.
        extract: Extracts an archive into a folder within a byte budget, refusing unsafe members, and lists
            each file in ``written`` before writing it (so a failure can remove them).
    """

    pack: Callable[[BinaryIO, _Entries, int], None]
    members: Callable[[Path], Iterator[tuple[str, BinaryIO]]]
    extract: Callable[[Path, Path, ExtractBudget, list[Path]], None]


# A new format is one entry here (its name is its file suffix).
ARCHIVE_CODECS: dict[str, ArchiveCodec] = {
    "zip": ArchiveCodec(_pack_zip, _zip_members, extract_zip),
    # mtime=0: the same files give the same archive bytes (and sha256) on every run
    "tar.gz": ArchiveCodec(_tar_packer(lambda out, level: gzip.GzipFile(fileobj=out, mode="wb", mtime=0,
                                                                      compresslevel=level)),
                           _tar_members, tar_extractor(lambda path: gzip.open(path, "rb"))),
    "tar.xz": ArchiveCodec(_tar_packer(lambda out, level: lzma.LZMAFile(out, "wb", preset=min(level, 9))),
                           _tar_members, tar_extractor(lambda path: lzma.open(path, "rb"))),
    "tar": ArchiveCodec(_tar_packer(None), _tar_members, tar_extractor(lambda path: open(path, "rb"))),
}
ARCHIVE_FORMATS: tuple[str, ...] = tuple(ARCHIVE_CODECS)


def _suffixes() -> str:
    return ", ".join("." + fmt for fmt in ARCHIVE_CODECS)


def _codec(fmt: str) -> ArchiveCodec:
    try:
        return ARCHIVE_CODECS[fmt]
    except KeyError:
        raise ArchiveError(f"unknown archive format {fmt!r}; use one of {', '.join(ARCHIVE_FORMATS)}") from None
