"""Reading uploaded files back from an object store: each one's size and sha256 against what a manifest says.

Small files are read in batched requests (``fs.cat`` of many paths at once), big ones streamed a chunk at a
time, so a verification costs a few requests and never holds a big file in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Callable

from .layout import CHUNK

SMALL = 8 << 20  # files up to this size are read back in one batched request; bigger ones streamed
BATCH_BYTES = 64 << 20

Expected = tuple[str, "int | None", "str | None"]  # (store path, size, sha256)


def verify_files(fs, expected: list[Expected], rel: Callable[[str], str]) -> list[str]:
    """Read every ``(path, size, sha256)`` back from ``fs``; the differences found (``rel`` names a path in them).

    Raises:
        Exception: what the filesystem raised for anything but a missing file.
    """
    problems: list[str] = []
    for batch in _batches([e for e in expected if (e[1] or 0) <= SMALL], BATCH_BYTES):
        problems += _verify_batch(fs, batch, rel)
    for path, size, sha in (e for e in expected if (e[1] or 0) > SMALL):
        try:
            digest, got_size = digest_remote(fs, path)
        except FileNotFoundError:
            problems.append(f"missing file {rel(path)}")
            continue
        problems += _compare(rel(path), got_size, digest, size, sha)
    return problems


def _verify_batch(fs, batch: list[Expected], rel: Callable[[str], str]) -> list[str]:
    """One batched read of small files."""
    problems: list[str] = []
    paths = [p for p, _, _ in batch]
    for path in paths:
        fs.invalidate_cache(path)
    got = fs.cat(paths, on_error="return")
    if len(paths) == 1 and not isinstance(got, dict):
        got = {paths[0]: got}
    for path, size, sha in batch:
        data = got.get(path, FileNotFoundError(path))
        if isinstance(data, FileNotFoundError):
            problems.append(f"missing file {rel(path)}")
            continue
        if isinstance(data, BaseException):
            raise data
        problems += _compare(rel(path), len(data), hashlib.sha256(data).hexdigest(), size, sha)
    return problems


def digest_remote(fs, path: str) -> tuple[str, int]:
    """``(sha256, size)`` of a stored file, streamed."""
    digest, size = hashlib.sha256(), 0
    fs.invalidate_cache(path)
    with fs.open(path, "rb", block_size=CHUNK, cache_type="none") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _compare(rel: str, size: int, sha: str, want_size: int | None, want_sha: str | None) -> list[str]:
    if size != want_size or (want_sha is not None and sha != want_sha):
        return [f"{rel}: {size} bytes sha256 {sha[:12]} != manifest {want_size} / {str(want_sha)[:12]}"]
    return []


def _batches(items: Iterable[Expected], limit: int):
    batch: list = []
    total = 0
    for item in items:
        if batch and total + (item[1] or 0) > limit:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += item[1] or 0
    if batch:
        yield batch


__all__ = ["digest_remote", "verify_files"]
