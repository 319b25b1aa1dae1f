"""``clearml-assets ui``, ``add-partitions`` and ``materialize``: commands on a home's Dagster instance (its
``dagster_home``, unless ``DAGSTER_HOME`` says otherwise), the same one the demo records its runs in."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from .cli import _home, stop_command


def add_instance_parsers(sub: argparse._SubParsersAction) -> None:
    """The sub-commands ``ui``, ``add-partitions`` and ``materialize``."""
    _add_ui_parser(sub)
    _add_partitions_parser(sub)
    _add_materialize_parser(sub)


def _homes(args: argparse.Namespace) -> tuple[Path, Path]:
    """The home and its Dagster instance folder (``--dagster-home``, ``$DAGSTER_HOME``, else ``HOME/dagster_home``,
    created with a ``dagster.yaml`` if missing): the same for `ui`, `add-partitions`, `materialize` and the demo."""
    from .demo import home_dagster_dir, prepare_dagster_home

    home = (Path(args.home).expanduser() if getattr(args, "home", None) else _home()).resolve()
    chosen = getattr(args, "dagster_home", None) or os.environ.get("DAGSTER_HOME")
    return home, prepare_dagster_home(Path(chosen) if chosen else home_dagster_dir(home))


def _dagster_prog(home: Path, dagster_home: Path) -> str:
    """Dagster's CLI by full path, preceded by the instance and home it must use where the shell does not set
    them (so the printed command works verbatim, venv activated or not)."""
    env = [] if os.environ.get("DAGSTER_HOME") else [f"DAGSTER_HOME={shlex.quote(str(dagster_home))}"]
    if home != _home().resolve():
        env.append(f"CLEARML_ASSETS_HOME={shlex.quote(str(home))}")
    dagster = Path(sys.executable).with_name("dagster")
    return " ".join([*env, shlex.quote(str(dagster)) if dagster.is_file() else "dagster"])


def _add_partitions(args: argparse.Namespace) -> int:
    from .errors import ClearMLAssetsError

    home, dagster_home = _homes(args)
    dagster = _dagster_prog(home, dagster_home)
    os.environ["CLEARML_ASSETS_HOME"] = str(home)
    import dagster as dg

    from .automation.partitions import add_clearml_archive_partitions, clearml_name_tag, materialize_command
    from .resource import ClearMLResource

    kind = "project" if args.projects else "task"
    clearml = ClearMLResource.from_env()
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            new = add_clearml_archive_partitions(instance, clearml, args.ids, account=args.account, kind=kind)
        client = clearml.client(args.account)
        rows = (client.tasks.iter if kind == "task" else client.projects.iter)(id=list(args.ids),
                                                                               only_fields=["id", "name"])
        names = {row.id: clearml_name_tag(row.name) for row in rows}
    except ClearMLAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    account = client.account
    print(f"added {len(new)} {kind} partition(s) of account {account!r} to the Dagster instance in {dagster_home}"
          + (f" ({len(set(args.ids)) - len(new)} already there)" if len(new) < len(set(args.ids)) else ""))
    print("archive one with:")
    for partition in dict.fromkeys(args.ids):
        print(f"  {partition}  {names.get(partition, '')}")
        print(f"    {materialize_command(account, partition, kind, dagster=dagster)}")
    return 0


def _materialize(args: argparse.Namespace) -> int:
    from .errors import ClearMLConfigError
    from .run_config import load_run_config_files, parse_run_config_json

    if args.config and args.config_json:
        print("error: give run config as --config files or as --config-json, not both", file=sys.stderr)
        return 2
    try:
        run_config = (load_run_config_files(args.config) if args.config
                      else parse_run_config_json(args.config_json) if args.config_json else None)
    except ClearMLConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    home, dagster_home = _homes(args)
    dagster = Path(sys.executable).with_name("dagster")
    argv = [str(dagster), "asset", "materialize", "-m", "clearml_assets.definitions", "--select", args.select]
    argv += ["--partition", args.partition] if args.partition else []
    argv += ["--partition-range", args.partition_range] if args.partition_range else []
    argv += ["--config-json", json.dumps(run_config)] if run_config else []
    env = {**os.environ, "CLEARML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    os.execve(str(dagster), argv, env)
    return 0  # not reached


def _ui(args: argparse.Namespace) -> int:
    from .local_server.ensure import LocalServerError, ensure_local_server

    home, dagster_home = _homes(args)
    dagster = Path(sys.executable).with_name("dagster")
    if not dagster.is_file():
        print(f"error: dagster is not installed next to {sys.executable}: pip install dagster-webserver",
              file=sys.stderr)
        return 1
    env = {**os.environ, "CLEARML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    os.environ["CLEARML_ASSETS_HOME"] = str(home)
    try:
        server = ensure_local_server(home)
    except LocalServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}"
    print(f"Dagster UI: open {url} in a browser once it is up (runs and assets of {dagster_home}).")
    if server.web_host:
        print(f"ClearML web view of the local server: {server.web_host} (sign in with the key pair in "
              f"{server.data_dir / 'credentials.json'}).")
    print("Ctrl+C stops the UI; the local server keeps running (stop it with "
          f"`{stop_command(home)}`).", flush=True)
    argv = [str(dagster), "dev", "-m", "clearml_assets.definitions", "-h", args.host, "-p", str(args.port)]
    os.execve(str(dagster), argv, env)
    return 0  # not reached


def _add_ui_parser(sub: argparse._SubParsersAction) -> None:
    """``ui``: the Dagster UI on a home's instance."""
    ui = sub.add_parser("ui", help="open the Dagster UI on the demo's home (dagster dev)",
                        description="Start `dagster dev` for clearml_assets.definitions with DAGSTER_HOME and "
                                    "CLEARML_ASSETS_HOME set to the home the demo used (and its local server "
                                    "running), so the UI shows the demo's runs and re-runs use the same server.")
    ui.add_argument("--home", help="CLEARML_ASSETS_HOME (default: $CLEARML_ASSETS_HOME or ~/.clearml_assets)")
    ui.add_argument("--dagster-home", help="DAGSTER_HOME (default: $DAGSTER_HOME or HOME/dagster_home)")
    ui.add_argument("--host", default="127.0.0.1", help="interface of the UI (default: %(default)s)")
    ui.add_argument("--port", type=int, default=int(os.environ.get("CLEARML_ASSETS_UI_PORT") or 3000),
                    help="UI port (default: $CLEARML_ASSETS_UI_PORT or %(default)s)")
    ui.set_defaults(func=_ui)


def _add_partitions_parser(sub: argparse._SubParsersAction) -> None:
    """``add-partitions``: ClearML ids as archive partitions."""
    add = sub.add_parser("add-partitions", help="add ClearML task (or project) ids as archive partitions",
                         description="Check that the ids exist on the account and add them as partitions of "
                                     "<account>/clearml_task_archive (or clearml_project_archive with --projects) "
                                     "in the Dagster instance of $DAGSTER_HOME (default: the home's dagster_home, "
                                     "the one `clearml-assets ui` and the demo use), so `dagster asset "
                                     "materialize --partition <id>` and the launchpad can archive them; it prints "
                                     "each id with its ClearML name and the command that archives it. The "
                                     "completed-task sensor does this by itself for tasks that complete.")
    add.add_argument("ids", nargs="+", metavar="ID", help="ClearML task ids (project ids with --projects)")
    add.add_argument("--account", help="ClearML account (default: CLEARML_ASSETS_DEFAULT_ACCOUNT or local)")
    add.add_argument("--projects", action="store_true", help="the ids are project ids (project archive)")
    add.add_argument("--home", help="CLEARML_ASSETS_HOME (default: $CLEARML_ASSETS_HOME or ~/.clearml_assets)")
    add.set_defaults(func=_add_partitions)


def _add_materialize_parser(sub: argparse._SubParsersAction) -> None:
    """``materialize``: ``dagster asset materialize`` on the home's instance, run config checked first."""
    mat = sub.add_parser("materialize", help="dagster asset materialize on the home's instance, run config "
                                             "checked first",
                         description="Run `dagster asset materialize -m clearml_assets.definitions` with "
                                     "DAGSTER_HOME and CLEARML_ASSETS_HOME of a home (as `clearml-assets ui`), "
                                     "after reading the run config files itself: a YAML or JSON error names the "
                                     "file, line and column instead of ending in a traceback. Run config goes "
                                     "under op names, e.g. {\"ops\": {\"training__shapes_yolo\": {\"config\": "
                                     "{\"epochs\": 3}}}}.")
    mat.add_argument("--select", required=True, help="asset selection, e.g. local/clearml_task_archive")
    mat.add_argument("--partition", help="partition key (a task id for a task archive)")
    mat.add_argument("--partition-range", help="partition range START...END")
    mat.add_argument("-c", "--config", action="append", default=[], metavar="FILE",
                     help="run config YAML file (repeatable; a file listed first wins)")
    mat.add_argument("--config-json", help="run config as JSON")
    mat.add_argument("--home", help="CLEARML_ASSETS_HOME (default: $CLEARML_ASSETS_HOME or ~/.clearml_assets)")
    mat.add_argument("--dagster-home", help="DAGSTER_HOME (default: $DAGSTER_HOME or HOME/dagster_home)")
    mat.set_defaults(func=_materialize)
