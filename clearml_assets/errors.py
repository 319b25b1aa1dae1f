"""Errors raised by clearml_assets, all rooted at ``dagster.Failure``."""

from __future__ import annotations

from typing import Any

import dagster as dg


class ClearMLAssetsError(dg.Failure):
    """Base class of every clearml_assets failure.

    Args:
        description: What went wrong and what to do about it (shown in the Dagster UI).
        metadata: Extra, secret-free facts for the UI.
    """

    def __init__(self, description: str, metadata: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(description=description, metadata=metadata, **kwargs)

    def __str__(self) -> str:
        return self.description or self.__class__.__name__


class ClearMLConnectionError(ClearMLAssetsError):
    """The account's server could not be reached, answered 5xx, or refused the keys."""


class ClearMLConfigError(ClearMLAssetsError):
    """The configuration (an account, an environment variable, a setting) is wrong or missing."""


class ClearMLRequestError(ClearMLAssetsError):
    """The server answered a request with an error result."""


class DatasetValidationError(ClearMLAssetsError):
    """Input data failed validation; the message lists the files at fault."""


class TrainingError(ClearMLAssetsError):
    """Model training failed; the ClearML task was marked failed and no model was registered."""


class ArchiveError(ClearMLAssetsError):
    """A task or project archive could not be completed or verified."""
