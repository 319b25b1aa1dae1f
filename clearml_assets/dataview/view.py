"""``DataView``: the frames of ClearML dataset versions chosen by frame queries, as the seed's ``allegroai`` code
reads them (``add_query``, ``prefetch_files``, ``to_list``, ``frame["image"].get_local_source()``)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from ..datasets.frame_query import frame_query_mask, query_syntax
from ..datasets.frame_query.lucene import parse_lucene
from ..datasets.frame_query.pandas_form import parse_pandas_query
from ..resource import ClearMLResource
from .account import DataViewAccount, dataview_account
from .catalog import VersionContents, find_version, read_contents
from .errors import DataViewError
from .fetch import Fetcher
from .frames import FrameGroup, VersionFrames, frame_sources, raw_rows
from .store import FileStore

log = logging.getLogger(__name__)
MANIFEST = "manifest.csv"
MAX_MANIFEST_BYTES = 256 << 20
TEXT_COLUMNS = frozenset({"frame_id", "split", "source", "image", "label", "sha256", "classes", "curated_image"})


class ClientSource:
    """The account's client, made on first use; pickles without it (nor any secret), for DataLoader workers."""

    def __init__(self, clearml: ClearMLResource, account: str):
        self.fields = {name: getattr(clearml, name) for name in type(clearml).model_fields}
        self.account, self._clearml, self._client, self._pid = account, clearml, None, os.getpid()

    def __call__(self):
        if self._pid != os.getpid():  # a forked child: the parent's connections (and their locks) stay there
            self._clearml, self._client, self._pid = None, None, os.getpid()
        if self._client is None:
            self._clearml = self._clearml or ClearMLResource(**self.fields)
            self._client = self._clearml.client(self.account)
        return self._client

    def __getstate__(self) -> dict:
        return {"fields": self.fields, "account": self.account}

    def __setstate__(self, state: dict) -> None:
        self.fields, self.account, self._clearml, self._client = state["fields"], state["account"], None, None
        self._pid = os.getpid()


class DataView:
    """Frames of ClearML dataset versions chosen by frame queries (see README, "The seed's DataView").

    Args:
        account: A ClearML account name (``ClearMLResource.from_env()``); default: the account the ClearML SDK of
            this process is configured for, else ``CLEARML_ASSETS_DEFAULT_ACCOUNT``, else the embedded local server.
        clearml: A ``ClearMLResource`` to take the account from instead of the environment.
        max_workers: Most downloads at once in ``prefetch_files()``.
        fetch_timeout_seconds: Longest wait of one ``get_local_source()`` for its file.
        cache_dir: Where files are kept; default ``$CLEARML_ASSETS_HOME/dataview``.
    """

    def __init__(self, *, account: str | None = None, clearml: ClearMLResource | None = None, max_workers: int = 4,
                 fetch_timeout_seconds: float = 3600.0, cache_dir: str | Path | None = None):
        self._account_args = (account, clearml)
        self.max_workers, self.fetch_timeout_seconds = max_workers, fetch_timeout_seconds
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._queries: list[dict[str, Any]] = []
        self._frames: list[FrameGroup] | None = None
        self._fetcher: Fetcher | None = None
        self.account: DataViewAccount | None = None

    def add_query(self, dataset_name: str | None = None, version_name: str | None = None,
                  frame_query: str | None = None, roi_query: str | Sequence[str] | None = None, *,
                  dataset_project: str | None = None, dataset_id: str | None = None) -> None:
        """Add the frames of one dataset version that match the queries (frames of several queries add up).

        Args:
            dataset_name: The ClearML dataset (``Dataset.create(dataset_name=...)``).
            version_name: Its version (``"1.0.0"``); default the newest finalized one.
            frame_query: ClearML's Lucene-style syntax (``meta.split:"train" AND NOT rois.label:circle``) or the
                pandas form (``split == "train"``); empty or None: every frame.
            roi_query: A label, or labels, every chosen frame has a box of (``rois.label``).
            dataset_project: The dataset's project, when datasets of several projects share the name.
            dataset_id: A version by id instead of by name.

        Raises:
            FrameQueryError: The frame query does not parse (its fields are checked when frames are listed).
        """
        query = _combined(frame_query, roi_query)
        if query and query_syntax(query) == "lucene":
            parse_lucene(query)
        elif query:
            parse_pandas_query(query)
        self._queries.append(dict(dataset_name=dataset_name, version_name=version_name, frame_query=query,
                                  dataset_project=dataset_project, dataset_id=dataset_id))
        self._frames = None

    def to_list(self) -> list[FrameGroup]:
        """The chosen frames (metadata and file references; no image data is read)."""
        if self._frames is None:
            self._frames = self._resolve()
        return list(self._frames)

    def get_iterator(self) -> Iterator[FrameGroup]:
        """The chosen frames one by one."""
        return iter(self.to_list())

    def prefetch_files(self, wait: bool = False) -> None:
        """Start downloading every file of the chosen frames in the background (``max_workers`` at once) and
        return; ``get_local_source()`` then waits only for its own file, and says which frame failed and why.

        Args:
            wait: Return only when every download has finished (failures still surface per frame).
        """
        frames = self.to_list()
        files = [s.stored for f in frames for s in f.values() if s.stored is not None]
        for contents in {id(f.shared.contents): f.shared.contents for f in frames}.values():
            if "classes.txt" in contents.files:  # the names of the boxes (rois)
                files.append(contents.files["classes.txt"])
                self._fetcher.register([contents.files["classes.txt"]], contents.chunks)
        futures = self._fetcher.prefetch(files) if self._fetcher else []
        log.info("DataView: prefetching %d files of %d frames (%d downloads)", len(files), len(frames), len(futures))
        if wait:
            wait_all(futures, timeout=self.fetch_timeout_seconds)

    def close(self) -> None:
        """Drop the downloads not started yet (running ones finish in the background)."""
        if self._fetcher is not None:
            self._fetcher.close()

    def __getstate__(self) -> dict:
        """Pickles (for DataLoader workers started with ``spawn``) without the resource; the frames keep what
        they need to fetch their files in the worker."""
        state = dict(self.__dict__)
        state["account"] = None
        state["_account_args"] = (self.account.name if self.account else self._account_args[0], None)
        return state

    def __enter__(self) -> "DataView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _resolve(self) -> list[FrameGroup]:
        if not self._queries:
            raise DataViewError("The DataView has no query: call add_query(dataset_name=..., version_name=...) first.")
        if self.account is None:
            self.account = dataview_account(*self._account_args)
        source = ClientSource(self.account.clearml, self.account.name)
        client = source()
        root = self.cache_dir or self.account.clearml.home_dir() / "dataview"
        store = FileStore(root / hashlib.sha256(client.api_host.encode()).hexdigest()[:16], source)
        self._fetcher = self._fetcher or Fetcher(store, self.max_workers, self.fetch_timeout_seconds)
        chosen: dict[tuple[str, str], FrameGroup] = {}
        for query in self._queries:
            for frame in self._query_frames(client, store, query):
                chosen.setdefault((frame.dataset_id, frame.id), frame)
        return list(chosen.values())

    def _query_frames(self, client, store: FileStore, query: dict[str, Any]) -> list[FrameGroup]:
        ref, task = find_version(client, dataset_name=query["dataset_name"], version_name=query["version_name"],
                                 dataset_project=query["dataset_project"], dataset_id=query["dataset_id"])
        contents = read_contents(client, store, ref, task)
        shared = VersionFrames(contents, self._fetcher)
        table = self._table(shared)
        if query["frame_query"]:
            table = table[frame_query_mask(table, query["frame_query"])]
        frames = [_frame(shared, row) for row in table.to_dict("records")]
        self._fetcher.register([s.stored for f in frames for s in f.values() if s.stored is not None],
                               contents.chunks)
        log.info("DataView: %s: %d frames match %r", ref, len(frames), query["frame_query"] or "everything")
        return frames

    def _table(self, shared: VersionFrames) -> pd.DataFrame:
        """The version's frames manifest (its ``manifest.csv``), or rows made from its image files (raw)."""
        contents = shared.contents
        stored = contents.files.get(MANIFEST)
        if stored is None:
            return pd.DataFrame(raw_rows(contents), columns=["frame_id", "image", "label", "bytes", "sha256"])
        if stored.size is not None and stored.size > MAX_MANIFEST_BYTES:
            raise DataViewError(f"{contents.ref}: its {MANIFEST} is {stored.size} bytes, more than the "
                                f"{MAX_MANIFEST_BYTES} read.")
        self._fetcher.register([stored], contents.chunks)
        if "classes.txt" in contents.files:
            self._fetcher.register([contents.files["classes.txt"]], contents.chunks)
        path = shared.local_path("manifest", "manifest", stored)
        return typed_manifest(path.read_bytes(), str(contents.ref))


def _combined(frame_query: str | None, roi_query: str | Sequence[str] | None) -> str:
    """One frame query from ``frame_query`` and the labels of ``roi_query`` (all of them required)."""
    labels = [roi_query] if isinstance(roi_query, str) else list(roi_query or [])
    parts = [f'rois.label:"{label.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
             for label in labels if label]
    query = (frame_query or "").strip()
    if not parts:
        return query
    if query and query_syntax(query) == "pandas":
        raise DataViewError("roi_query combines with a frame_query in ClearML's Lucene-style syntax only; "
                            "write the frame query as e.g. meta.split:\"train\".")
    return " AND ".join(([f"({query})"] if query else []) + parts)


def _frame(shared: VersionFrames, row: dict[str, Any]) -> FrameGroup:
    contents = shared.contents
    image = str(row.get("image") or "")
    if image not in contents.files:
        raise DataViewError(f"{contents.ref}: its manifest names {image!r} for frame {row.get('frame_id')!r}, "
                            "which the version does not hold; the version is inconsistent, make it again.")
    label = row.get("label")
    return FrameGroup(shared, str(row.get("frame_id") or Path(image).stem), row,
                      frame_sources(contents, image, str(label) if label else None))


def typed_manifest(data: bytes, what: str) -> pd.DataFrame:
    """A ``manifest.csv`` read as text, then each column of numbers (every non-empty value one) as numbers
    and each of ``True``/``False`` as booleans; ids and paths always stay text."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataViewError(f"{what}: its {MANIFEST} is not readable CSV ({exc}).") from None
    for column in frame.columns:
        if column in TEXT_COLUMNS:
            continue
        values = frame[column]
        filled = values != ""
        if filled.any() and values[filled].isin(["True", "False"]).all() and filled.all():
            frame[column] = values == "True"
            continue
        numbers = pd.to_numeric(values.where(filled, np.nan), errors="coerce")
        if filled.any() and numbers[filled].notna().all():
            whole = filled.all() and (numbers % 1 == 0).all()
            frame[column] = numbers.astype("int64") if whole else numbers
    return frame
