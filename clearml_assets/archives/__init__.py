"""Task and project archives: complete ClearML exports as verified folders and archive files."""

from ..lazy_exports import lazy_exports
from .exporter import ClearMLTaskExporter, ProjectExportResult, TaskExportResult
from .packing import extract_archive, verify_archive
from .paths import original_name, safe_component

__all__ = ["ClearMLTaskExporter", "ProjectExportResult", "TaskExportResult", "extract_archive",
           "verify_archive", "original_name", "safe_component", "build_archive_defs"]

__getattr__ = lazy_exports(__name__, {"build_archive_defs": ".defs"})
