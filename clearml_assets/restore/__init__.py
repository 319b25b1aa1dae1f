"""Restore archives into ClearML accounts, copy dataset versions between accounts, and sync one account into
another (see docs/restore.md)."""

from .engine import INCOMPLETE_TAG, PROVENANCE_PREFIX, RestoreError, RestoreResult, TaskRestorer, restore_archive

__all__ = ["INCOMPLETE_TAG", "PROVENANCE_PREFIX", "RestoreError", "RestoreResult", "TaskRestorer", "restore_archive",
           "build_sync_definitions", "copy_dataset_version", "restore_main"]


def __getattr__(name: str):
    # Dagster and the SDK runner load only when these are used (the CLI's restore needs neither)
    if name == "build_sync_definitions":
        from .sync import build_sync_definitions

        return build_sync_definitions
    if name == "copy_dataset_version":
        from .datasets import copy_dataset_version

        return copy_dataset_version
    if name == "restore_main":
        from .cli import restore_main

        return restore_main
    raise AttributeError(name)
