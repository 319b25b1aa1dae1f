#!/usr/bin/env python
"""Run clearml-server's own automated API tests, unchanged, against the local server.

The upstream tests (``apiserver/tests`` of a clearml-server revision) are extracted with ``git archive`` from a
read-only mirror into a scratch folder outside the repository at run time; nothing of them is kept. The adapter
only:

* redirects the host: the tests build ``http://localhost:8008/v<version>``; a ``conftest.py`` in the scratch
  folder swaps scheme/host/port for the local server's (the version path is kept);
* hands over the key pairs: ``apiserver.config_repo.config.get("apiclient.api_key"/"secret_key")`` (of user
  ``Test1``, named ``Test User``, as in upstream's test environment) and the second user's
  ``apiclient.user_auth_only``/``user_auth_only_secret`` (same company, another user, with no user record:
  ``Credential(auth_only=True)``, as the upstream tests require);
* stubs the server modules the tests import to load (``apiserver.config_repo``, ``apiserver.apierrors`` generated
  from that revision's ``errors.conf``, ``apiserver.database.utils``, ``apiserver.database.model``,
  ``apiserver.es_factory``, ``apiserver.utilities.dicts``) with minimal stand-ins written into the scratch folder;
  ``apiserver.database.utils.partition_tags`` is the local server's own (``--repo`` is on the tests' path).

It starts a local server from ``--repo`` (a worktree; default the current folder) in a child process on free ports
with a temporary data folder, presenting itself as the clearml-server release the tests come from (its
``apiserver/version.py``: ``--rev v1.9.2`` tests a server that is 1.9.2 with API 2.23, ``--rev HEAD`` the newest
release; ``CLEARML_ASSETS_SERVER_VERSION``), runs pytest on the chosen files and prints per-file and total
pass/fail counts plus the failing test ids.

Usage::

    python tools/conformance/run_upstream.py --repo . --rev v1.9.2            # the in-scope files
    python tools/conformance/run_upstream.py --rev HEAD test_models.py -k publish
    python tools/conformance/run_upstream.py --rev HEAD --group agent          # queues and workers
    python tools/conformance/run_upstream.py --all                             # every upstream file

Test deps (installed in the venv): pytest, requests, six, boltons, packaging, future.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

DEFAULT_MIRROR = "/work/.mirror/clearml+clearml-server/repo"

# Services the local server implements (tasks, projects, models, events and the shared get_all machinery).
# Queues/workers join once the local server serves them (see --all).
IN_SCOPE = (
    "test_batch_operations.py", "test_entity_ordering.py", "test_get_all_ex_filters.py", "test_models.py",
    "test_move_under_project.py", "test_paging_and_scrolling.py", "test_project_delete.py",
    "test_project_tags.py", "test_projection.py", "test_projects_edit.py", "test_subprojects.py",
    "test_tags.py", "test_task_artifacts.py", "test_task_debug_images.py", "test_task_events.py",
    "test_task_hyperparams.py", "test_task_models.py", "test_task_parents.py", "test_task_plots.py",
    "test_tasks_delete.py", "test_tasks_diff.py", "test_tasks_edit.py", "test_tasks_filtering.py",
    "test_tasks_running.py",
)

# What the local server serves to a ClearML agent.
AGENT = ("test_queues.py", "test_workers.py")
# Services the web app and newer clients use (HEAD only; absent files are left out).
NEWER = ("test_organization.py", "test_pipelines.py", "test_project_usages.py", "test_queue_model_metadata.py",
         "test_reports.py", "test_serving.py", "test_users.py")
GROUPS = {"in-scope": IN_SCOPE, "agent": AGENT, "newer": NEWER}

# -- stand-ins for the server modules the tests import ------------------------------------------------------
STUBS = {
    "apiserver/__init__.py": "",
    "apiserver/config_repo.py": '''
import logging
import os


class _Config:
    """Only what the tests read: the key pair (from the adapter) and defaults."""

    _values = {
        "apiclient.api_key": os.environ.get("CONFORMANCE_ACCESS_KEY"),
        "apiclient.secret_key": os.environ.get("CONFORMANCE_SECRET_KEY"),
        # a second key pair of the same company acting as another user (test_subprojects aggregations)
        "apiclient.user_auth_only": os.environ.get("CONFORMANCE_ACCESS_KEY2"),
        "apiclient.user_auth_only_secret": os.environ.get("CONFORMANCE_SECRET_KEY2"),
    }

    def get(self, key, default=None):
        value = self._values.get(key)
        return default if value is None else value

    def logger(self, name):
        return logging.getLogger(os.path.basename(str(name)))


config = _Config()
''',
    "apiserver/apierrors/__init__.py": "from . import errors  # noqa: F401\nfrom .base import BaseError  # noqa: F401\n",
    "apiserver/apierrors/base.py": '''
class BaseError(Exception):
    _default_code = 500
    _default_subcode = 0
    _default_msg = ""

    class _Codes:
        def __get__(self, obj, owner):
            return owner._default_code, owner._default_subcode

    codes = _Codes()
''',
    "apiserver/es_factory.py": '''
import time


class _EsFactory:
    @staticmethod
    def get_timestamp_millis():
        return int(time.time() * 1000)


es_factory = _EsFactory()
''',
    "apiserver/database/__init__.py": "",
    "apiserver/database/utils.py": '''
import uuid

# test_tags checks the tag split of old clients: the local server's own rule (the repo is on the path)
from clearml_assets.local_server.bll.tags import partition_tags  # noqa: F401


def id():
    return uuid.uuid4().hex
''',
    "apiserver/database/model/__init__.py": '''
from enum import Enum


class EntityVisibility(Enum):
    active = "active"
    archived = "archived"
    hidden = "hidden"
''',
    "apiserver/database/model/task/__init__.py": "",
    "apiserver/database/model/task/task.py": '''
class TaskStatus:
    created = "created"
    queued = "queued"
    in_progress = "in_progress"
    stopped = "stopped"
    publishing = "publishing"
    published = "published"
    closed = "closed"
    failed = "failed"
    completed = "completed"
    unknown = "unknown"
''',
    "apiserver/utilities/__init__.py": "",
    "apiserver/utilities/dicts.py": '''
def nested_get(dictionary, path, default=None):
    node = dictionary
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node
''',
    "conftest.py": '''
import os
import re

from apiserver.tests import api_client

_TARGET = os.environ["CONFORMANCE_API_HOST"].rstrip("/")
_init = api_client.APIClient.__init__


def _redirected(self, *args, base_url=None, **kwargs):
    if base_url:
        base_url = re.sub(r"^https?://[^/]+", _TARGET, base_url)
    _init(self, *args, base_url=base_url, **kwargs)


api_client.APIClient.__init__ = _redirected
''',
    "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\ntimeout = 300\n",
}


def error_modules(errors_conf: str) -> dict[str, str]:
    """``apiserver/apierrors/errors/<group>.py`` files: one class per entry of ``errors.conf``."""
    files: dict[str, list[str]] = {}
    code = group = None
    for line in errors_conf.splitlines():
        line = line.split("#", 1)[0].strip()
        if m := re.match(r"^(\d+)\s*:?\s*\{", line):
            code, group = int(m.group(1)), None
        elif (m := re.match(r'^_\s*:\s*"([^"]+)"', line)) and code is not None:
            group = m.group(1)
            files[group] = ["from ..base import BaseError\n"]
        elif (m := re.match(r'^(\d+)\s*:\s*\["([^"]+)"\s*,\s*"([^"]*)"', line)) and group:
            name = "".join(w[:1].upper() + w[1:] for w in re.split(r"[_\s]+", m.group(2)) if w)
            files[group].append(f"\nclass {name}(BaseError):\n    _default_code = {code}\n"
                                f"    _default_subcode = {int(m.group(1))}\n    _default_msg = {m.group(3)!r}\n")
    out = {f"apiserver/apierrors/errors/{g}.py": "".join(body) for g, body in files.items()}
    out["apiserver/apierrors/errors/__init__.py"] = "".join(f"from . import {g}  # noqa: F401\n" for g in files)
    return out


def extract(mirror: str, rev: str, scratch: Path) -> None:
    """Upstream ``apiserver/tests`` at ``rev`` plus the stand-ins, into ``scratch``."""
    archive = subprocess.run(["git", "-C", mirror, "archive", rev, "apiserver/tests"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(scratch, filter="data")
    conf = subprocess.run(["git", "-C", mirror, "show", f"{rev}:apiserver/apierrors/errors.conf"], check=True,
                          capture_output=True, text=True).stdout
    for rel, text in {**STUBS, **error_modules(conf)}.items():
        path = scratch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))


def release_of(mirror: str, rev: str) -> str:
    """The clearml-server release of ``rev`` (``apiserver/version.py``'s ``__version__``)."""
    text = subprocess.run(["git", "-C", mirror, "show", f"{rev}:apiserver/version.py"], check=True,
                          capture_output=True, text=True).stdout
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    if not match:
        raise SystemExit(f"no __version__ in apiserver/version.py at {rev}")
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER_SCRIPT = """
import sys
from pathlib import Path
from clearml_assets.local_server import LocalServer, Credential
# the upstream test environment's user behind the first key pair (test_subprojects names it)
creds = [Credential(sys.argv[4], sys.argv[5], user="Test1", name="Test User"),
         Credential(sys.argv[6], sys.argv[7], user="conformance-user2", auth_only=True)]
server = LocalServer(Path(sys.argv[1]), api_port=int(sys.argv[2]), files_port=int(sys.argv[3]), credentials=creds)
server.serve_forever()
"""


def start_server(repo: Path, data_dir: Path, keys: list[str], log_path: Path, release: str
                 ) -> tuple[subprocess.Popen, str]:
    """The repo's local server, presenting itself as clearml-server ``release``, in a child process; returns it
    and its API URL once it answers."""
    api_port, files_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env["PYTHONPATH"] = str(repo)
    env["CLEARML_ASSETS_SERVER_VERSION"] = release
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(data_dir), str(api_port), str(files_port),
                             *keys], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=repo)
    log.close()
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 60
    import urllib.request
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"local server exited with {proc.returncode}; log: {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/debug.ping", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"local server did not answer in 60 s; log: {log_path}")
        time.sleep(0.1)


def summarize(junit: Path) -> int:
    """Print per-file and total counts and the failing ids; returns the number of failures."""
    per_file: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failing: list[str] = []
    root = ET.parse(junit).getroot()
    for case in root.iter("testcase"):
        module = case.get("classname", "").split(".")
        fname = next((p for p in module if p.startswith("test_")), module[-1]) + ".py"
        cls = module[-1] if module and module[-1][:1].isupper() else ""
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        per_file[fname][outcome] += 1
        if outcome == "failed":
            failing.append(f"{fname}::{cls}::{case.get('name')}" if cls else f"{fname}::{case.get('name')}")
    totals: dict[str, int] = defaultdict(int)
    print(f"\n{'file':40} {'passed':>7} {'failed':>7} {'skipped':>7}")
    for fname in sorted(per_file):
        counts = per_file[fname]
        for k, v in counts.items():
            totals[k] += v
        print(f"{fname:40} {counts['passed']:7} {counts['failed']:7} {counts['skipped']:7}")
    total = sum(totals.values())
    print(f"{'TOTAL':40} {totals['passed']:7} {totals['failed']:7} {totals['skipped']:7}"
          f"   ({totals['passed']} of {total} pass)")
    if failing:
        print("\nfailing:")
        for test_id in failing:
            print("  " + test_id)
    return totals["failed"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=".", help="worktree whose local server is tested (default: cwd)")
    parser.add_argument("--rev", default="v1.9.2", help="clearml-server revision of the tests (v1.9.2, HEAD)")
    parser.add_argument("--mirror", default=os.environ.get("CLEARML_SERVER_MIRROR", DEFAULT_MIRROR),
                        help="read-only git mirror of clearml/clearml-server")
    parser.add_argument("--all", action="store_true", help="every upstream test file, not only the in-scope ones")
    parser.add_argument("--group", choices=sorted(GROUPS), default="in-scope",
                        help="which files without --all or named files: in-scope (default), agent (queues, "
                             "workers) or newer (reports, pipelines, users, organization, ...)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and server log")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the summary (no pytest output)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="test files (e.g. test_models.py) and/or pytest options such as -k NAME")
    return parser


def chosen_files(args: argparse.Namespace, tests_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """The test files to run (named ones, else the group's or every one), the pytest options, and those of the
    named files the revision does not have."""
    present = sorted(p.name for p in tests_dir.glob("test_*.py"))
    files = [a for a in args.pytest_args if a.endswith(".py")]
    options = [a for a in args.pytest_args if not a.endswith(".py")]
    chosen = files or (present if args.all else [f for f in GROUPS[args.group] if f in present])
    return chosen, options, [f for f in chosen if f not in present]


def run_tests(args: argparse.Namespace, repo: Path, scratch: Path, chosen: list[str], options: list[str],
              url: str, keys: list[tuple[str, str]]) -> int:
    """pytest on the chosen files against the server at ``url``; prints the summary, returns the exit code."""
    env = {**os.environ, "CONFORMANCE_API_HOST": url, "CONFORMANCE_ACCESS_KEY": keys[0][0],
           "CONFORMANCE_SECRET_KEY": keys[0][1], "CONFORMANCE_ACCESS_KEY2": keys[1][0],
           "CONFORMANCE_SECRET_KEY2": keys[1][1], "PYTHONPATH": os.pathsep.join([str(scratch), str(repo)])}
    junit = scratch / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-rN", "--tb=line" if args.quiet else "--tb=short",
           f"--junitxml={junit}", "-o", "junit_family=xunit1", *options,
           *[f"apiserver/tests/automated/{f}" for f in chosen]]
    out = subprocess.DEVNULL if args.quiet else None
    subprocess.run(cmd, cwd=scratch, env=env, stdout=out, stderr=out)
    if not junit.exists():
        print("pytest produced no report")
        return 2
    return 1 if summarize(junit) else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    repo = Path(args.repo).resolve()
    if not (repo / "clearml_assets" / "local_server").is_dir():
        parser.error(f"--repo {repo} has no clearml_assets/local_server")
    scratch = Path(tempfile.mkdtemp(prefix="clearml-conformance-"))
    proc = None
    try:
        extract(args.mirror, args.rev, scratch)
        chosen, options, missing = chosen_files(args, scratch / "apiserver" / "tests" / "automated")
        if missing:
            parser.error(f"not in {args.rev}: {', '.join(missing)}")
        keys = [("CONF" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24)) for _ in range(2)]
        release = release_of(args.mirror, args.rev)
        proc, url = start_server(repo, scratch / "data", [k for pair in keys for k in pair], scratch / "server.log",
                                 release)
        print(f"upstream tests {args.rev} (clearml-server {release}) against {repo} ({url}); scratch {scratch}",
              flush=True)
        return run_tests(args, repo, scratch, chosen, options, url, keys)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
