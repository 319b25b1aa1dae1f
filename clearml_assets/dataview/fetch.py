"""Background fetching of a view's files: one unit per zip chunk (or linked file), at most ``max_workers`` at
once, each unit fetched once per process; a file's wait ends with its path or a ``FetchError`` saying why.

Works across ``fork`` (PyTorch DataLoader workers): a child process starts its own pool on first use and
finds what the parent already placed in the shared cache.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from pathlib import Path
from typing import Iterable

from .store import Chunk, FetchError, FileStore, StoredFile

UnitKey = tuple[str, str, str]  # (dataset id, chunk artifact or "link", link URL or "")
_LIVE: "weakref.WeakSet[Fetcher]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child gets fresh locks: a parent's download thread may have held one at the fork."""
    for fetcher in list(_LIVE):
        fetcher._lock = threading.Lock()
        fetcher._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


def unit_key(stored: StoredFile) -> UnitKey:
    """The download unit holding ``stored``: its chunk, or the link itself."""
    return (stored.dataset_id, "link", stored.link) if stored.link else (stored.dataset_id, stored.artifact, "")


class Fetcher:
    """Fetches registered files in the background; see the module docstring."""

    def __init__(self, store: FileStore, max_workers: int = 4, timeout: float = 3600.0):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.store = store
        self.max_workers = max_workers
        self.timeout = timeout
        self._chunks: dict[UnitKey, Chunk] = {}
        self._members: dict[UnitKey, dict[str, StoredFile]] = {}
        self._lock = threading.Lock()
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[UnitKey, tuple[Future, frozenset[str]]] = {}  # and the files each run places

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_pool", "_futures")}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._reset()
        _LIVE.add(self)

    def register(self, files: Iterable[StoredFile], chunks: dict[tuple[str, str], Chunk]) -> None:
        """Make ``files`` fetchable: each joins the unit of its chunk (``chunks``: by dataset id and artifact)."""
        with self._lock:
            for stored in files:
                key = unit_key(stored)
                if not stored.link:
                    chunk = chunks.get((stored.dataset_id, stored.artifact))
                    if chunk is None:
                        raise FetchError(f"{stored.relative_path!r}: dataset version {stored.dataset_id} has no "
                                         f"artifact {stored.artifact!r}, which ClearML says holds it")
                    self._chunks[key] = chunk
                self._members.setdefault(key, {})[stored.relative_path] = stored

    def prefetch(self, files: Iterable[StoredFile]) -> list[Future]:
        """Start fetching the units of ``files`` not here yet (or join their running fetch); their futures."""
        missing: dict[UnitKey, set[str]] = {}
        for stored in files:
            if not self.store.path_of(stored).is_file():
                missing.setdefault(unit_key(stored), set()).add(stored.relative_path)
        return [self._start(key, paths) for key, paths in missing.items()]

    def local_path(self, stored: StoredFile, timeout: float | None = None) -> Path:
        """The verified local copy of ``stored``, fetched now if no prefetch has (waits for a running one).

        Raises:
            FetchError: The unit failed, this file was not in it as recorded, or it did not arrive in time.
        """
        path = self.store.path_of(stored)
        if path.is_file():
            return path
        future = self._start(unit_key(stored), {stored.relative_path})
        wait = self.timeout if timeout is None else timeout
        try:
            problems = future.result(timeout=wait)
        except FutureTimeout:
            raise FetchError(f"it did not arrive within {wait:.0f} s (the download goes on in the background)"
                             ) from None
        if path.is_file():
            return path
        raise FetchError(problems.get(stored.relative_path) or "it was not placed by the fetch of its chunk")

    def _start(self, key: UnitKey, needed: set[str]) -> Future:
        """The run of unit ``key``: the current one, or a new one if none ran in this process, the last failed,
        or it did not include all of ``needed`` (files registered after it started)."""
        with self._lock:
            if self._pid != os.getpid():
                self._reset()  # a forked child: the parent's threads and futures are not here
            future, placed = self._futures.get(key, (None, frozenset()))
            failed = future is not None and future.done() and future.exception() is not None
            if future is not None and not failed and needed <= placed:
                return future
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="clearml-dataview")
                _on_exit(self._pool)
            members = list(self._members.get(key, {}).values())
            future = self._pool.submit(self._fetch_unit, key, members)
            self._futures[key] = (future, frozenset(m.relative_path for m in members))
            return future

    def _fetch_unit(self, key: UnitKey, members: list[StoredFile]) -> dict[str, str]:
        if key[1] == "link":
            for stored in members:
                self.store.fetch_link(stored)
            return {}
        return self.store.fetch_chunk(self._chunks[key], members)

    def close(self) -> None:
        """Stop: units not started are dropped, running ones end in the background."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._reset()


def _on_exit(pool: ThreadPoolExecutor) -> None:
    """At interpreter exit, drop the units not started, so exit waits only for the running downloads.

    ``concurrent.futures`` joins its workers from ``threading``'s own exit hooks, before ``atexit`` runs; a
    hook registered the same way after it runs first (they run last-in first-out)."""
    register = getattr(threading, "_register_atexit", None) or atexit.register
    try:
        register(lambda: pool.shutdown(wait=False, cancel_futures=True))
    except RuntimeError:
        pass  # the interpreter is already shutting down
