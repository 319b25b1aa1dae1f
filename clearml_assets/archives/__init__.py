"""Task and project archives: complete ClearML exports as verified folders and archive files."""

from .exporter import ClearMLTaskExporter, ProjectExportResult, TaskExportResult
from .packing import extract_archive, verify_archive
from .paths import original_name, safe_component

__all__ = ["ClearMLTaskExporter", "ProjectExportResult", "TaskExportResult", "extract_archive",
           "verify_archive", "original_name", "safe_component", "build_archive_defs"]


def __getattr__(name: str):
    if name == "build_archive_defs":
        from .defs import build_archive_defs

        return build_archive_defs
    raise AttributeError(name)
