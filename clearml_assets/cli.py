"""The ``clearml-assets`` command line."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path



def _server_data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir).expanduser().resolve()
    home = Path(args.home).expanduser() if args.home else _home()
    return (home / "server").resolve()


def _home() -> Path:
    from .accounts import clearml_assets_home

    return clearml_assets_home()


def _port(value: str) -> int | None:
    return None if value.lower() in ("none", "off") else int(value)


def _local_server(args: argparse.Namespace) -> int:
    action = {"serve": _serve_local_server, "start": _start_local_server, "stop": _stop_local_server,
              "status": _local_server_status}[args.action]
    return action(args)


def _serve_local_server(args: argparse.Namespace) -> int:
    from .local_server import Credential, LocalServer
    from .local_server.runner import DataDirInUse, PortInUse, check_ports_free

    key = args.access_key or os.environ.get("CLEARML_ASSETS_SERVER_ACCESS_KEY")
    secret = args.secret_key or os.environ.get("CLEARML_ASSETS_SERVER_SECRET_KEY")
    if bool(key) != bool(secret):
        print("error: --access-key and --secret-key go together", file=sys.stderr)
        return 2
    creds = [Credential(key, secret)] if key else None
    try:
        server = LocalServer(_server_data_dir(args), host=args.host, api_port=args.api_port,
                             files_port=args.files_port, web_port=args.web_port, credentials=creds,
                             server_version=args.server_version, web_app=args.web_app)
    except ValueError as exc:  # an unknown release or a folder that is not a web app build
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # before printing where it listens: a taken port is the one line it prints
        check_ports_free(server.host, {"API": server.api_port, "files": server.files_port,
                                       "web view": server.web_port})
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_server(server.info, f"ClearML-compatible local server (clearml-server {server.release.version}, "
                                   f"API {server.release.api_version})", server.web_app)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {args.host}, not loopback only", file=sys.stderr)
        print("Ctrl+C stops it.", flush=True)
    try:
        server.serve_forever(record=True)
    except (DataDirInUse, PortInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_server(info, title: str, web_app: Path | None = None) -> None:
    print(f"{title}, data in {info.data_dir}")
    print(f"  API:       {info.api_host}")
    print(f"  files:     {info.files_host}")
    if info.web_host and web_app:
        print(f"  web app:   {info.web_host}  (the ClearML web app from {web_app}; sign in with the access key as "
              f"user name and the secret key as password, from {info.data_dir / 'credentials.json'})")
    elif info.web_host:
        print(f"  web view:  {info.web_host}  (sign in with the key pair in {info.data_dir / 'credentials.json'})")
    print("Set these for a ClearML client (the key pair is also in "
          f"{info.data_dir / 'credentials.json'}):")
    for name, value in info.env().items():
        if value:
            print(f"  export {name}={shlex.quote(value)}")


def _server_command(args: argparse.Namespace, action: str) -> str:
    where = f"--data-dir {shlex.quote(str(_server_data_dir(args)))}" if args.data_dir else \
        (f"--home {shlex.quote(str(Path(args.home).expanduser().resolve()))}" if args.home else "")
    return " ".join(filter(None, [_prog(), "local-server", action, where]))


def _start_local_server(args: argparse.Namespace) -> int:
    from .local_server.ensure import LocalServerError, start_server

    if args.access_key or args.secret_key:
        print("error: `start` takes a key pair only from CLEARML_ASSETS_SERVER_ACCESS_KEY/"
              "CLEARML_ASSETS_SERVER_SECRET_KEY (a command line is visible to every user in ps)", file=sys.stderr)
        return 2
    try:
        web_app = _child_server_settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        info, started = start_server(_server_data_dir(args), host=args.host, api_port=args.api_port,
                                     files_port=args.files_port, web_port=args.web_port)
    except LocalServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_server(info, "Started the local server" if started else "The local server already runs", web_app)
        print(f"Stop it with: {_server_command(args, 'stop')}")
        print(f"Check it with: {_server_command(args, 'status')}")
    return 0


def _child_server_settings(args: argparse.Namespace) -> Path | None:
    """``--web-app`` and ``--server-version`` for a server started in the background: checked here, handed to the
    child in its environment (``CLEARML_ASSETS_WEB_APP``, ``CLEARML_ASSETS_SERVER_VERSION``); the web app build."""
    from .local_server.core.versions import SERVER_VERSION_ENV, server_release
    from .local_server.webapp import WEB_APP_ENV, check_web_app_build

    if args.server_version:
        os.environ[SERVER_VERSION_ENV] = server_release(args.server_version).version
    web_app = args.web_app or os.environ.get(WEB_APP_ENV)
    if not web_app:
        return None
    build = check_web_app_build(web_app)
    os.environ[WEB_APP_ENV] = str(build)
    return build


def _stop_local_server(args: argparse.Namespace) -> int:
    from .local_server.ensure import LocalServerError, stop_server

    data_dir = _server_data_dir(args)
    try:
        pid = stop_server(data_dir)
    except LocalServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stopped the local server of {data_dir} (pid {pid})" if pid else
          f"no local server runs for {data_dir}")
    return 0


def _local_server_status(args: argparse.Namespace) -> int:
    from .local_server.ensure import health, recorded_server, server_is_alive
    from .local_server.runner import remove_server_file

    data_dir = _server_data_dir(args)
    found = recorded_server(data_dir)
    if found is not None and not server_is_alive(found[1]):
        remove_server_file(data_dir, found[1])  # it died without removing its record
        found = None
    if found is None:
        print(f"not running: no local server recorded for {data_dir} (start it with "
              f"`{_server_command(args, 'start')}`)")
        return 3
    info, pid = found
    parts = health(info)
    ok = all(parts.values())
    print(f"{'healthy' if ok else 'NOT healthy'}: local server pid {pid}, data in {data_dir}")
    hosts = {"api": info.api_host, "files": info.files_host, "web": info.web_host}
    for part, answered in parts.items():
        print(f"  {part:6s} {hosts[part]}  {'answers' if answered else 'does not answer'}")
    return 0 if ok else 1


def _prog() -> str:
    """How to run this command line from any shell, venv activated or not."""
    script = Path(sys.executable).with_name("clearml-assets")
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m clearml_assets.cli"


def ui_command(home: Path, dagster_home: Path) -> str:
    """The ``clearml-assets ui`` command line that opens the Dagster UI on ``home``/``dagster_home``."""
    parts = [_prog(), "ui", "--home", shlex.quote(str(home))]
    if Path(dagster_home).resolve() != (Path(home) / "dagster_home").resolve():
        parts += ["--dagster-home", shlex.quote(str(dagster_home))]
    return " ".join(parts)


def stop_command(home: Path) -> str:
    """The command that stops the local server of ``home``."""
    return f"{_prog()} local-server stop --home {shlex.quote(str(home))}"


def _ui(args: argparse.Namespace) -> int:
    from .demo import prepare_dagster_home
    from .local_server.ensure import LocalServerError, ensure_local_server

    home = (Path(args.home).expanduser() if args.home else _home()).resolve()
    dagster_home = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or home / "dagster_home")
    dagster_home = dagster_home.expanduser().resolve()
    prepare_dagster_home(dagster_home)
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


def _make_demo_data(args: argparse.Namespace) -> int:
    from .datasets.shapes import generate_demo_dataset

    info = generate_demo_dataset(Path(args.out), images=args.images, seed=args.seed, size=args.size)
    print(f"wrote {info.images} images with {info.objects} objects ({', '.join(info.class_names)}) to {info.folder}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .errors import ClearMLAssetsError

    try:
        summary = run_demo(account=args.account, home=Path(args.home) if args.home else None,
                           train_epochs=args.epochs, images=args.images, imgsz=args.imgsz,
                           verbose=args.verbose)
    except ClearMLAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
    """What the demo made, where it is, and the next commands (printed verbatim, runnable as they are)."""
    home, dagster_home = Path(summary["home"]), Path(summary["dagster_home"])
    print("\nclearml-assets demo finished in {seconds} s on account {account!r}.".format(**summary))
    rows = [
        ("dataset (training view)", f"{summary['training_view_dataset_id']} version {summary['training_view_version']}"),
        ("training task", f"{summary['task_id']}  {summary.get('task_link') or ''}".rstrip()),
        ("model", f"{summary['model_id']}  {summary['main_metric']}={summary['main_metric_value']}  "
                  f"({summary['champion_decision']})  {summary.get('model_link') or ''}".rstrip()),
        ("export folder", summary["export_folder"]),
        ("metrics.json", summary["metrics_json"]),
        ("archive", f"{summary['archive_path']} (sha256 {str(summary['archive_sha256'])[:16]}...)"),
        ("archive check", summary["archive_check"]),
        ("demo log", summary["log_file"]),
    ]
    for name, value in rows:
        print(f"  {name + ':':25s}{value}")
    if summary.get("server_api"):
        print(f"\nThe local ClearML server keeps running (API {summary['server_api']}, web view "
              f"{summary['server_web'] or 'off'}; sign in with the key pair in {summary['server_credentials']}).")
        print(f"  stop it:   {stop_command(home)}")
        print(f"  check it:  {_prog()} local-server status --home {shlex.quote(str(home))}")
    print("\nSee the runs, assets and checks in the Dagster UI:")
    print(f"  {ui_command(home, dagster_home)}")


def _add_partitions(args: argparse.Namespace) -> int:
    from .errors import ClearMLAssetsError

    if not os.environ.get("DAGSTER_HOME"):
        print("error: DAGSTER_HOME is not set: partitions live in a persistent Dagster instance; set DAGSTER_HOME "
              "to the folder `dagster dev` / `dagster asset materialize` use (e.g. export "
              "DAGSTER_HOME=~/.clearml_assets/dagster_home)", file=sys.stderr)
        return 2
    import dagster as dg

    from .automation.partitions import add_clearml_archive_partitions, materialize_command
    from .resource import ClearMLResource

    kind = "project" if args.projects else "task"
    clearml = ClearMLResource.from_env()
    try:
        with dg.DagsterInstance.get() as instance:
            new = add_clearml_archive_partitions(instance, clearml, args.ids, account=args.account, kind=kind)
    except ClearMLAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    account = args.account or clearml.default_account
    print(f"added {len(new)} {kind} partition(s) of account {account!r}"
          + (f" ({len(set(args.ids)) - len(new)} already there)" if len(new) < len(set(args.ids)) else ""))
    print("archive one with:")
    for partition in dict.fromkeys(args.ids):
        print(f"  {materialize_command(account, partition, kind)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from .restore.cli import restore_main

    return restore_main(args.restore_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clearml-assets``."""
    parser = argparse.ArgumentParser(
        prog="clearml-assets",
        description="Dagster assets for ClearML, with an embedded local ClearML-compatible server.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    srv = sub.add_parser("local-server", help="run, start, stop or check the local ClearML-compatible server",
                         description="Serve the ClearML REST API, a fileserver and a read-only web view (or the "
                                     "ClearML web app, with --web-app) from a local folder. `serve` (default) runs "
                                     "in the foreground; `start` runs it in "
                                     "the background (it keeps running until `stop`); `status` is a health check "
                                     "(exit 0 healthy, 1 not healthy, 3 not running). Data persists in the data "
                                     "directory; the key pair is generated once and kept there unless given. One "
                                     "data directory is served by one server at most.")
    srv.add_argument("action", nargs="?", choices=["serve", "start", "stop", "status"], default="serve",
                     help="what to do (default: serve)")
    srv.add_argument("--home", help="CLEARML_ASSETS_HOME whose server to use (data in HOME/server; default: "
                                    "$CLEARML_ASSETS_HOME or ~/.clearml_assets)")
    srv.add_argument("--data-dir", help="folder for the database and files (default: HOME/server)")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    srv.add_argument("--api-port", type=int, default=8008, help="API port (default: %(default)s)")
    srv.add_argument("--files-port", type=int, default=8081, help="fileserver port (default: %(default)s)")
    srv.add_argument("--web-port", type=_port, default=8080,
                     help="web view port, 0 for a free one, none for no web view (default: %(default)s)")
    srv.add_argument("--web-app", metavar="DIR",
                     help="serve this ClearML web app build (clearml-web, or /usr/share/nginx/html of clearml-server's "
                          "webserver image) on the web port instead of the read-only web view (or "
                          "CLEARML_ASSETS_WEB_APP)")
    srv.add_argument("--server-version", choices=["2.3.0", "1.9.2"],
                     help="clearml-server release to present itself as (default: CLEARML_ASSETS_SERVER_VERSION or "
                          "2.3.0, API 2.34; 1.9.2 is API 2.23)")
    srv.add_argument("--access-key", help="access key to accept (or CLEARML_ASSETS_SERVER_ACCESS_KEY)")
    srv.add_argument("--secret-key", help="secret key to accept (or CLEARML_ASSETS_SERVER_SECRET_KEY)")
    srv.add_argument("--quiet", action="store_true", help="print nothing on start")
    srv.set_defaults(func=_local_server)

    demo = sub.add_parser("make-demo-data", help="write the demo object detection set (shapes on noise)",
                          description="Write coloured circles, squares and triangles on noise with exact "
                                      "YOLO labels (images/, labels/, classes.txt); the same seed always "
                                      "gives the same bytes.")
    demo.add_argument("--out", required=True, help="target folder")
    demo.add_argument("--images", type=int, default=160, help="number of images (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    demo.add_argument("--size", type=int, default=160, help="image side in pixels (default: %(default)s)")
    demo.set_defaults(func=_make_demo_data)
    run = sub.add_parser("demo", help="run the main job: dataset versions, YOLO model, task archive",
                         description="Materialize the dataset versions (raw -> curated -> training view), train "
                                     "and register the YOLO model, and archive its ClearML task, on the embedded "
                                     "local server (started on demand) or the account given.")
    run.add_argument("--account", help="ClearML account (default: CLEARML_ASSETS_DEFAULT_ACCOUNT or local)")
    run.add_argument("--home", help="CLEARML_ASSETS_HOME for this run (default: $CLEARML_ASSETS_HOME or "
                                    "~/.clearml_assets)")
    run.add_argument("--epochs", type=int, help="training epochs (default: the training config's default)")
    run.add_argument("--images", type=int, help="images in the generated demo set (default: the dataset "
                                                "config's default; fewer is quicker)")
    run.add_argument("--imgsz", type=int, help="training image size (default: the training config's default)")
    run.add_argument("--verbose", action="store_true", help="show every library's output in the terminal "
                                                            "instead of the demo log file")
    run.set_defaults(func=_demo)

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

    add = sub.add_parser("add-partitions", help="add ClearML task (or project) ids as archive partitions",
                         description="Check that the ids exist on the account and add them as partitions of "
                                     "<account>/clearml_task_archive (or clearml_project_archive with --projects) "
                                     "in the Dagster instance of $DAGSTER_HOME, so `dagster asset materialize "
                                     "--partition <id>` and the launchpad can archive them. The completed-task "
                                     "sensor does this by itself for tasks that complete.")
    add.add_argument("ids", nargs="+", metavar="ID", help="ClearML task ids (project ids with --projects)")
    add.add_argument("--account", help="ClearML account (default: CLEARML_ASSETS_DEFAULT_ACCOUNT or local)")
    add.add_argument("--projects", action="store_true", help="the ids are project ids (project archive)")
    add.set_defaults(func=_add_partitions)

    rest = sub.add_parser("restore", add_help=False, prefix_chars="\0",
                          help="restore an archive into a ClearML account, or copy dataset versions",
                          description="See `clearml-assets restore --help`.")
    rest.add_argument("restore_args", nargs=argparse.REMAINDER)
    rest.set_defaults(func=_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
