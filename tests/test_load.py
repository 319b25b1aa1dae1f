"""A short run of ``benchmarks/bench_load.py``: 8 exporters and 2 real-SDK writers at once lose nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_load import run_load  # noqa: E402


@pytest.mark.timeout(400)
def test_concurrent_exports_and_sdk_writers_lose_no_event(tmp_path: Path):
    figures = run_load(seconds=6, exporters=8, writers=2, seeded_tasks=4, workdir=tmp_path, writer_pause=0.005)
    print({k: v for k, v in figures.items() if k != "errors"})
    assert figures["errors"] == []
    assert figures["exports"] >= 8 and figures["events_written"] > 1000
    assert figures["events_lost"] == 0
