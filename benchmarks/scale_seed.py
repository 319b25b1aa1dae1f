"""Seeding a local ClearML server with a deployment's worth of tasks, fast, for ``bench_scale.py``.

Seeding is not what is measured, so it writes the server's store directly: three template tasks are made
through the REST API as the SDK makes them (:class:`seeding.RawSeeder`: ``tasks.create``, ``events.add_batch``,
fileserver uploads, ``tasks.completed``), then the server is stopped and every other task is a copy of a template
written straight into its SQLite store: the task document with a new id, name, project and timestamps, and the
template's event rows with the new task id (each event's identity, which only a later re-report of the same
event would use, made unique by prefixing the new id instead of the server's hash of it).
Copies keep the template's file URLs, so every copy downloads the same files (the same bytes, really transferred).
The server is then started again on the same ports and loads the store.

The templates: *small* (most tasks: a few scalar series, log lines, a plot, a debug image and a small artifact),
*big* (``big_events`` scalar points and as many log lines) and *artifact* (a small task with an artifact of
``artifact_mb`` MB). Depends on the local server's store layout (``docs`` and ``events`` tables of
``server.sqlite3``); a change there changes :func:`clone_tasks`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from seeding import DemoSpec, RawSeeder  # noqa: E402

from clearml_assets.local_server.runner import LocalServerProcess, free_port, start_local_server_process  # noqa: E402

SMALL = DemoSpec(scalar_series=4, points_per_series=10, log_lines=20, artifacts=1, artifact_bytes=16 << 10,
                 plots=1, debug_images=1)


@dataclasses.dataclass
class ScaleSpec:
    """How many tasks of each kind, and where they go.

    Attributes:
        tasks: Every task the server holds.
        backfill: Tasks of project ``scale/backfill`` (archived by the backfill): ``backfill_big_fraction`` big,
            ``artifact_tasks`` with a big artifact, the rest small.
        project: Tasks of project ``scale/project`` (the big project archive), small.
        project_small: Tasks of project ``scale/project_small`` (its memory baseline), small.
        big_fraction: Share of big tasks in the history and the projects (task records, last metrics and all,
            without the events nothing here reads: the history's tasks, small or big, are records only).
        backfill_big_fraction: Share of big tasks in the backfill, seeded with their events (0.2% by default: 20 of
            10,000, 4 million event rows; 1% made the seeding alone take over half an hour).
        big_events: Scalar points and log lines of a big task (each).
        artifact_tasks: Tasks of the backfill holding an artifact of ``artifact_mb`` MB.
        artifact_mb: Size of that artifact.
    """

    tasks: int = 100_000
    backfill: int = 10_000
    project: int = 20_000
    project_small: int = 2_000
    big_fraction: float = 0.01
    backfill_big_fraction: float = 0.002
    big_events: int = 100_000
    artifact_tasks: int = 5
    artifact_mb: int = 100

    @property
    def history(self) -> int:
        return self.tasks - self.backfill - self.project - self.project_small

    def validate(self) -> None:
        if self.history < 0:
            raise SystemExit(f"--tasks {self.tasks} is fewer than the backfill and project tasks together")


@dataclasses.dataclass
class Seeded:
    """What was seeded: the running server and the task ids by project."""

    server: LocalServerProcess
    data_dir: Path
    projects: dict[str, str]
    ids: dict[str, list[str]]
    templates: dict[str, str]
    events: int


def big_spec(spec: ScaleSpec) -> DemoSpec:
    series = 10
    return DemoSpec(scalar_series=series, points_per_series=max(1, spec.big_events // series),
                    log_lines=spec.big_events, artifacts=1, artifact_bytes=1 << 20, plots=2, debug_images=2)


def artifact_spec(spec: ScaleSpec) -> DemoSpec:
    return dataclasses.replace(SMALL, artifact_bytes=spec.artifact_mb << 20)


def seed(spec: ScaleSpec, data_dir: Path, log_file: Path) -> Seeded:
    """Seed ``spec`` into a new local server at ``data_dir``; returns it running."""
    spec.validate()
    ports = {"api_port": free_port("127.0.0.1"), "files_port": free_port("127.0.0.1")}
    server = start_local_server_process(data_dir, log_file=log_file, web_port=None, **ports)
    try:
        info = server.info
        seeder = RawSeeder(info.api_host, info.files_host, info.access_key, info.secret_key)
        names = ("scale/backfill", "scale/project", "scale/project_small", "scale/history", "scale/templates")
        projects = {name: seeder.project(name) for name in names}
        templates = {
            "small": seeder.seed_task(projects["scale/templates"], "scale/templates", "template small", SMALL),
            "big": seeder.seed_task(projects["scale/templates"], "scale/templates", "template big", big_spec(spec)),
            "artifact": seeder.seed_task(projects["scale/templates"], "scale/templates", "template artifact",
                                         artifact_spec(spec)),
        }
    finally:
        server.stop()
    plan = _plan(spec, projects)
    events = clone_tasks(data_dir / "server.sqlite3", templates, plan)
    server = start_local_server_process(data_dir, log_file=log_file, web_port=None, timeout=600, **ports)
    ids: dict[str, list[str]] = {}
    for project_name, _template, task_id, _when in plan:
        ids.setdefault(project_name, []).append(task_id)
    return Seeded(server, data_dir, projects, ids, templates, events)


def _plan(spec: ScaleSpec, projects: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """``(project, template, new task id, status_changed)`` of every task, completions spread over 30 days."""
    kinds: list[tuple[str, str]] = []
    for name, count, big_events in (("scale/history", spec.history, False), ("scale/backfill", spec.backfill, True),
                                    ("scale/project", spec.project, False),
                                    ("scale/project_small", spec.project_small, False)):
        fraction = spec.backfill_big_fraction if big_events else spec.big_fraction
        big_every = round(1 / fraction) if fraction > 0 else 0
        for i in range(count):
            template = "small_record" if name == "scale/history" else "small"
            if big_every and i % big_every == big_every // 2:
                template = "big" if big_events else "big_record"
            elif name == "scale/backfill" and i < spec.artifact_tasks:
                template = "artifact"
            kinds.append((name, template))
    start = datetime.now(timezone.utc) - timedelta(days=30)
    step = timedelta(days=29) / max(1, len(kinds))
    # ids that grow with the insertion order (a random prefix, then a counter): copies append to the store's
    # indexes instead of landing at random pages of them, which is what makes seeding a million rows a minute
    prefix = uuid.uuid4().hex[:20]
    return [(name, template, f"{prefix}{i:012x}", (start + i * step).isoformat(timespec="microseconds"))
            for i, (name, template) in enumerate(kinds)]


def clone_tasks(db: Path, templates: dict[str, str], plan: list[tuple[str, str, str, str]]) -> int:
    """Write the planned copies of the templates into the store; returns the event rows written."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB of pages: the indexes stay in memory while they grow
    docs = {kind: conn.execute("SELECT body FROM docs WHERE collection='tasks' AND id=?", (task,)).fetchone()[0]
            for kind, task in templates.items()}
    docs["big_record"], docs["small_record"] = docs["big"], docs["small"]
    project_ids = dict(conn.execute("SELECT json_extract(body, '$.name'), id FROM docs WHERE collection='projects'"))
    written, started = 0, time.monotonic()
    conn.execute("BEGIN")
    for n, (project_name, template, task_id, when) in enumerate(plan):
        source = templates.get(template)
        doc = json.loads(docs[template])
        doc.update(id=task_id, name=f"{project_name.rsplit('/', 1)[-1]} {n:06d}",
                   project=project_ids[project_name], status_changed=when, started=when, completed=when,
                   last_update=when, last_change=when, created=when)
        conn.execute("INSERT INTO docs (collection, id, body) VALUES ('tasks', ?, ?)",
                     (task_id, json.dumps(doc, separators=(",", ":"))))
        if not template.endswith("_record"):
            written += _clone_events(conn, source, task_id, doc["company"])
        if n % 5000 == 4999:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            print(f"  seeded {n + 1:,} of {len(plan):,} tasks ({written:,} events, "
                  f"{time.monotonic() - started:.0f} s)", flush=True)
    conn.execute("COMMIT")
    conn.close()
    return written


def _clone_events(conn: sqlite3.Connection, source: str, task_id: str, company: str) -> int:
    cursor = conn.execute(
        "INSERT INTO events (company, task, type, ts, iter, metric, variant, value, model_event, ident, body) "
        "SELECT company, :new, type, ts, iter, metric, variant, value, model_event, :new || ident, "
        "replace(body, :old_task, :new_task) FROM events WHERE company = :company AND task = :old ORDER BY seq",
        {"new": task_id, "old": source, "company": company, "old_task": f'"task":"{source}"', "new_task": f'"task":"{task_id}"'})
    return cursor.rowcount
