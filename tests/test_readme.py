"""The README's test commands are what CI runs, and every file the README and the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()


def _fenced_bash_lines() -> list[str]:
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines()]


def test_the_readme_test_command_is_what_ci_runs_verbatim():
    (command,) = [line for line in _fenced_bash_lines() if "-m pytest -q" in line]
    assert command in CI.splitlines(), f"README's test command is not a line of .ci/run: {command!r}"


def test_ci_runs_the_marked_step_the_readme_describes():
    step = '.venv/bin/python -m pytest -q -m "slow or browser"'
    assert step in README and step in CI.splitlines()


def test_every_file_the_readme_and_the_docs_name_exists():
    pattern = r"\b((?:benchmarks|tests|tools/conformance|docs|clearml_assets)/[\w/.-]+\.(?:py|md))"
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        named = set(re.findall(pattern, doc.read_text()))
        assert sorted(p for p in named if not (REPO / p).is_file()) == [], f"{doc.name} names files that are gone"
    assert re.findall(pattern, README), "the README names no file"
