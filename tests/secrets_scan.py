"""Find ClearML keys where they must never be: logs, run records, metadata, archives, exception text.

The test session (see ``conftest.py``) collects every key pair its local servers generated
(``credentials.json`` in each server's data dir) and scans what the tests produced: every file under
pytest's base temporary directory (archive members and parquet columns included, SQLite run and event
storage as bytes) and every test's captured output and failure text. A finding names the place and
which kind of key it is, never the key.
"""

from __future__ import annotations

import functools
import json
import lzma
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import re2

# Where keys belong: the local server's key store (and the SDK settings it writes beside it, clearml.conf, 0600),
# and .env files tests write on purpose.
ALLOWED_NAMES = {"credentials.json", ".env"}
BESIDE_KEY_STORE = {"clearml.conf"}
CHUNK = 1 << 20
MIN_SECRET_LENGTH = 12  # shorter strings would match by chance


@dataclass(frozen=True)
class Secret:
    """One key and a label that is safe to print."""

    value: str
    label: str


@dataclass(frozen=True)
class Finding:
    """A place holding a key."""

    where: str
    label: str

    def __str__(self) -> str:
        return f"{self.label} found in {self.where}"


def secrets_in_credential_files(root: Path) -> list[Secret]:
    """Every access and secret key stored in a ``credentials.json`` under ``root``."""
    found: dict[str, Secret] = {}
    for path in root.rglob("credentials.json"):
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for entry in entries if isinstance(entries, list) else []:
            for field in ("access_key", "secret_key"):
                value = str(entry.get(field) or "")
                if len(value) >= MIN_SECRET_LENGTH:
                    found.setdefault(value, Secret(value, f"{field} of {entry.get('company', '?')}"))
    return list(found.values())


def scan_text(text: str, secrets: Iterable[Secret], where: str) -> list[Finding]:
    """Findings of ``secrets`` in one text."""
    return [Finding(where, s.label) for s in secrets if s.value in text]


def _scan_stream(chunks: Iterator[bytes], secrets: list[Secret], where: str) -> list[Finding]:
    needles = [(s, s.value.encode()) for s in secrets]
    if not needles:
        return []
    pattern = _any_of(tuple(n for _, n in needles))
    overlap = max((len(n) for _, n in needles), default=1) - 1
    tail, hits = b"", {}
    for chunk in chunks:
        window = tail + chunk
        if pattern.search(window):  # one linear pass; which key it was only where one is
            for secret, needle in needles:
                if secret.label not in hits and needle in window:
                    hits[secret.label] = Finding(where, secret.label)
        tail = window[-overlap:] if overlap else b""
    return list(hits.values())


@functools.lru_cache(maxsize=4)
def _any_of(needles: tuple[bytes, ...]) -> re2._Regexp:
    """One RE2 automaton for all keys: a session holds hundreds, and testing each in turn made the scan
    O(bytes x keys) (minutes at the end of the suite)."""
    options = re2.Options()
    options.max_mem = 256 << 20
    return re2.compile(b"|".join(re2.escape(n) for n in needles), options)


def _file_chunks(handle) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def scan_file(path: Path, secrets: list[Secret]) -> list[Finding]:
    """Findings in one file: its bytes, and each member of a zip or tar, and the values of a parquet file."""
    with path.open("rb") as handle:
        findings = _scan_stream(_file_chunks(handle), secrets, str(path))
    try:
        findings += _scan_members(path, secrets)
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError, zlib.error, lzma.LZMAError,
            RuntimeError, NotImplementedError):
        pass  # a damaged archive (some tests make them): its raw bytes were scanned above
    return findings


def _scan_members(path: Path, secrets: list[Secret]) -> list[Finding]:
    findings: list[Finding] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as handle:
                    findings += _scan_stream(_file_chunks(handle), secrets, f"{path}!{member.filename}")
    elif path.name.endswith((".tar", ".tar.gz", ".tgz")) and tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            for member in archive:
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    findings += _scan_stream(_file_chunks(handle), secrets, f"{path}!{member.name}")
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        findings += scan_text(text, secrets, str(path))
    return findings


def scan_tree(root: Path, secrets: list[Secret]) -> list[Finding]:
    """Findings in every regular file under ``root`` except the places keys belong."""
    if not secrets:
        return []
    findings = []
    for path in root.rglob("*"):
        if path.name in ALLOWED_NAMES or path.is_symlink() or not path.is_file():
            continue
        if path.name in BESIDE_KEY_STORE and (path.parent / "credentials.json").is_file():
            continue
        try:
            findings += scan_file(path, secrets)
        except OSError:
            continue  # a file another process is still writing or removing
    return findings
