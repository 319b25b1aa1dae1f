"""Persistence for the local server: documents in memory, written through to SQLite.

Projects, tasks, models (and any other document collection) live in dicts for fast
filtering and are written to the ``docs`` table on every change, so they survive a
restart. Events live only in SQLite (``events`` table) because there can be millions.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .ordered import INDEXED, OrderedIndex

SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    company TEXT NOT NULL,
    task TEXT NOT NULL,
    type TEXT NOT NULL,
    ts INTEGER NOT NULL,
    iter INTEGER,
    metric TEXT,
    variant TEXT,
    value REAL,
    model_event INTEGER NOT NULL DEFAULT 0,
    ident TEXT,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_ident ON events (company, ident) WHERE ident IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_task ON events (company, task, type, seq);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (company, task, type, ts, seq);
CREATE INDEX IF NOT EXISTS events_by_metric ON events (company, task, type, metric, variant, iter, seq);
CREATE INDEX IF NOT EXISTS events_by_iter ON events (company, task, type, iter, seq);
-- one metric's scalars in iteration order (scalar_metrics_iter_raw) without visiting the other metrics' rows
CREATE INDEX IF NOT EXISTS events_by_metric_iter ON events (company, task, type, metric, iter, seq);
"""


class DocumentLock:
    """The store's document lock: reentrant, and able to step aside for slow pure work.

    Read-modify-write sequences of documents run under it (every locked handler). :meth:`released` lets the
    holding thread give it up entirely while it does work that touches no document (matching a caller's regular
    expression against names copied out), so one slow request never stalls every other company's.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = threading.local()

    def __enter__(self) -> "DocumentLock":
        self._lock.acquire()
        self._depth.n = getattr(self._depth, "n", 0) + 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth.n -= 1
        self._lock.release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give the lock up for the block (however deeply this thread holds it), then take it back as it was."""
        depth = getattr(self._depth, "n", 0)
        for _ in range(depth):
            self._lock.release()
        self._depth.n = 0
        try:
            yield
        finally:
            for _ in range(depth):
                self._lock.acquire()
            self._depth.n = depth


class Store:
    """Thread-safe document and event store rooted at ``data_dir``.

    Args:
        data_dir: Folder holding ``server.sqlite3`` (created if missing).
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "server.sqlite3"
        self.lock = DocumentLock()
        self._write_lock = threading.Lock()
        # a document saved while an index is first built must reach it: its copy of the documents and every
        # later save's index update are ordered by this lock
        self._index_lock = threading.Lock()
        self._local = threading.local()
        self._conn = self.connect()
        self._conn.executescript(SCHEMA)
        self._docs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.quirks: frozenset[str] = frozenset()
        """Real-server bugs to reproduce (names read by the services, e.g. ``scroll_restart_at_iter0``), besides
        the per-request ``CLEARML_LOCAL_SERVER_QUIRKS`` environment variable."""
        self.throttle: Any = None
        """The API app's 429 switch (:class:`..throttle.Throttle`), set when the app is built."""
        for collection, doc_id, body in self._conn.execute("SELECT collection, id, body FROM docs"):
            self._docs[collection][doc_id] = json.loads(body)
        self._indexes = {(c, f): OrderedIndex(f) for c, fields in INDEXED.items() for f in fields}

    def ordered_index(self, collection: str, field: str) -> OrderedIndex | None:
        """The index of ``collection`` ordered by ``field`` (built on first use), if there is one."""
        index = self._indexes.get((collection, field))
        if index is not None and not index.built:
            with self._index_lock:
                if not index.built:
                    index.build(list(self._docs[collection].values()))
        return index

    def documents(self, collection: str) -> dict[str, dict]:
        """The live documents of ``collection`` by id (read-only use: mutate through :meth:`get` and :meth:`save`)."""
        return self._docs[collection]

    def _indexed(self, collection: str) -> list[OrderedIndex]:
        return [i for (c, _), i in self._indexes.items() if c == collection and i.built]

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=60, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    # -- documents -------------------------------------------------------------------------
    def get(self, collection: str, doc_id: str, company: str | None = None,
            allow_public: bool = False) -> dict | None:
        """Return the live document (mutate it, then call :meth:`save`) or None.

        With ``allow_public`` a document of the public company (``company: ""``) is found too.
        """
        doc = self._docs[collection].get(doc_id)
        if doc is None or company is None:
            return doc
        owner = doc.get("company")
        if owner == company or (allow_public and not owner):
            return doc
        return None

    def all(self, collection: str, company: str | None = None, allow_public: bool = False) -> list[dict]:
        """Every live document of a collection (of one company when given, plus public ones if asked)."""
        docs = self._docs[collection].values()
        if company is None:
            return list(docs)
        if allow_public:
            return [d for d in docs if d.get("company") == company or not d.get("company")]
        return [d for d in docs if d.get("company") == company]

    def save(self, collection: str, doc: dict) -> None:
        """Insert or replace ``doc`` (it must carry ``id``) in memory and on disk."""
        with self._index_lock:
            self._docs[collection][doc["id"]] = doc
            for index in self._indexed(collection):
                index.update(doc)
        body = json.dumps(doc, separators=(",", ":"))
        with self._write_lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO docs (collection, id, body) VALUES (?, ?, ?)",
                (collection, doc["id"], body),
            )

    def delete(self, collection: str, doc_id: str) -> None:
        """Remove a document from memory and disk."""
        with self._index_lock:
            self._docs[collection].pop(doc_id, None)
            for index in self._indexed(collection):
                index.discard(doc_id)
        with self._write_lock:
            self._conn.execute("DELETE FROM docs WHERE collection=? AND id=?", (collection, doc_id))

    def ensure_user(self, company: str, user: str, name: str | None = None) -> None:
        """Record a user the first time one of its key pairs calls (``users.*`` list them)."""
        if not user or user in self._docs["users"]:
            return
        with self.lock:
            if user not in self._docs["users"]:
                self.save("users", {"id": user, "company": company, "name": name or user, "given_name": "",
                                    "family_name": "", "avatar": None, "created": None})

    @staticmethod
    def copy(doc: dict) -> dict:
        """A deep copy of a document, safe to hand out in a response."""
        return copy.deepcopy(doc)

    # -- events ----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The write connection inside one transaction, serialized across threads."""
        with self._write_lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def reader(self) -> sqlite3.Connection:
        """A per-thread read connection (WAL lets readers run beside the writer)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close the write connection (read connections close with their threads)."""
        with self._write_lock:
            self._conn.close()
