"""The one place an export writes JSON records: every URL's ``user:password@`` is masked on the way out.

Everything a task or project folder holds as JSON (``task.json``, ``project.json``, the artifact and model
indexes, and each line of the event files such as ``debug_images/index.jsonl`` or ``plots/plots.jsonl``)
goes through :func:`write_json` or :func:`record_line`, so no record can keep a URL password.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..client import redact_url_credentials


def record_line(record: Any) -> str:
    """``record`` as one JSON line (URL credentials masked), newline-terminated."""
    return json.dumps(redact_url_credentials(record), ensure_ascii=False, default=str) + "\n"


def write_json(path: Path, data: Any) -> None:
    """``data`` as an indented JSON document at ``path`` (URL credentials masked; folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(redact_url_credentials(data), handle, indent=1, ensure_ascii=False, default=str,
                  allow_nan=True)
