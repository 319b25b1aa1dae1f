"""Persistence of the local server (clearml-server's ``database`` layer): documents and events in SQLite, and the
``*.get_all`` query semantics over the documents.

- :mod:`.database`: the :class:`Store` (documents in memory written through to SQLite, the events table);
- :mod:`.queries`, :mod:`.filters`, :mod:`.ordering`, :mod:`.fields`: ``*.get_all`` over documents;
- :mod:`.event_writer`, :mod:`.event_stats`, :mod:`.event_rows`, :mod:`.plots`: storing events (the real
  ``add_events``), the task statistics they update, SQL helpers for reading them, compressed plots.
"""

from .database import Store

__all__ = ["Store"]
