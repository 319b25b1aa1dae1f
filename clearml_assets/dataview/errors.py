"""Errors of the DataView, rooted at ``clearml_assets.ClearMLAssetsError`` (a ``dagster.Failure``)."""

from __future__ import annotations

from ..errors import ClearMLAssetsError


class DataViewError(ClearMLAssetsError):
    """A dataset version could not be found or read; the message names it and what to do."""


class DataViewFetchError(DataViewError):
    """A frame's file could not be fetched; the message names the frame, the source and the reason.

    Attributes:
        frame_id: The frame.
        source_id: The source of the frame (``image``, ``label``, ``mask``).
        relative_path: The file in the dataset version.
    """

    def __init__(self, frame_id: str, source_id: str, relative_path: str, version: str, reason: str):
        self.frame_id, self.source_id, self.relative_path = frame_id, source_id, relative_path
        super().__init__(
            f"Frame {frame_id!r}, source {source_id!r} ({relative_path} of {version}) could not be fetched: "
            f"{reason.rstrip('. ')}. Check that the server and its fileserver answer, then ask again: a failed download is "
            "tried again on the next get_local_source().",
            metadata={"frame_id": frame_id, "source": source_id, "file": relative_path})
