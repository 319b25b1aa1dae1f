"""The ``clearml-assets`` command line."""

from __future__ import annotations

import argparse
import os
import shlex
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


HOME_PORT = -1  # a port option not given: the server keeps the port it was first started on


def _explicit_ports(args: argparse.Namespace) -> dict[str, int | None]:
    """The ports given on the command line (``api``, ``files``, ``web``): they replace the recorded ones."""
    given = {"api": args.api_port, "files": args.files_port, "web": args.web_port}
    return {part: port for part, port in given.items() if port != HOME_PORT}


def _local_server(args: argparse.Namespace) -> int:
    action = {"serve": _serve_local_server, "start": _start_local_server, "stop": _stop_local_server,
              "status": _local_server_status}[args.action]
    return action(args)


def _serve_local_server(args: argparse.Namespace) -> int:
    from .local_server import Credential, LocalServer, sdk_config_file
    from .local_server.home_ports import HomePortTaken, choose_ports, record_ports
    from .local_server.runner import DataDirInUse, PortInUse, check_ports_free, lock_is_held

    key = args.access_key or os.environ.get("CLEARML_ASSETS_SERVER_ACCESS_KEY")
    secret = args.secret_key or os.environ.get("CLEARML_ASSETS_SERVER_SECRET_KEY")
    if bool(key) != bool(secret):
        print("error: --access-key and --secret-key go together", file=sys.stderr)
        return 2
    creds = [Credential(key, secret)] if key else None
    data_dir = _server_data_dir(args)
    if lock_is_held(data_dir):
        print(f"error: {DataDirInUse(data_dir)}", file=sys.stderr)
        return 1
    try:  # before printing where it listens: a taken port is the one line it prints
        ports = choose_ports(data_dir, args.host, {"api": 8008, "files": 8081, "web": 8080}, _explicit_ports(args))
        server = LocalServer(data_dir, host=args.host, api_port=ports["api"], files_port=ports["files"],
                             web_port=ports["web"], credentials=creds, server_version=args.server_version,
                             web_app=args.web_app)
        check_ports_free(server.host, {"API": server.api_port, "files": server.files_port,
                                       "web view": server.web_port})
    except (PortInUse, HomePortTaken) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an unknown release or a folder that is not a web app build
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record_ports(data_dir, ports)
    sdk_config_file(server.info)
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
    from .local_server import sdk_config_file

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
    print("or the same in one file:")
    print(f"  export CLEARML_CONFIG_FILE={shlex.quote(str(sdk_config_file(info)))}")


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
        info, started = start_server(_server_data_dir(args), host=args.host, explicit=_explicit_ports(args))
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
    if parts["api"]:
        _print_sdk_settings(info)
    return 0 if ok else 1


def _print_sdk_settings(info) -> None:
    """How a ClearML SDK script uses this server: the ``clearml.conf`` written for it (hosts and key pair)."""
    from .local_server import sdk_config_file

    print("SDK settings (hosts and key pair, for a ClearML script or `clearml-agent`):")
    print(f"  export CLEARML_CONFIG_FILE={shlex.quote(str(sdk_config_file(info)))}")


def _prog() -> str:
    """How to run this command line from any shell, venv activated or not."""
    script = Path(sys.executable).with_name("clearml-assets")
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m clearml_assets.cli"


def ui_command(home: Path, dagster_home: Path) -> str:
    """The ``clearml-assets ui`` command line that opens the Dagster UI on ``home``/``dagster_home``."""
    parts = [_prog(), "ui", "--home", shlex.quote(str(home))]
    from .demo import home_dagster_dir

    if Path(dagster_home).resolve() != home_dagster_dir(home).resolve():
        parts += ["--dagster-home", shlex.quote(str(dagster_home))]
    return " ".join(parts)


def stop_command(home: Path) -> str:
    """The command that stops the local server of ``home``."""
    return f"{_prog()} local-server stop --home {shlex.quote(str(home))}"


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
        print(f"  SDK:       export CLEARML_CONFIG_FILE={shlex.quote(summary['server_sdk_config'])}"
              "   (hosts and key pair for any ClearML script)")
        print(f"  stop it:   {stop_command(home)}")
        print(f"  check it:  {_prog()} local-server status --home {shlex.quote(str(home))}")
    print("\nSee the runs, assets and checks in the Dagster UI:")
    print(f"  {ui_command(home, dagster_home)}")


def _restore(args: argparse.Namespace) -> int:
    from .restore.cli import restore_main

    return restore_main(args.restore_args)


def _add_demo_parsers(sub: argparse._SubParsersAction) -> None:
    """``make-demo-data`` and ``demo``."""
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


def _add_restore_parser(sub: argparse._SubParsersAction) -> None:
    """``restore``: its arguments are parsed by ``restore.cli``."""
    rest = sub.add_parser("restore", add_help=False, prefix_chars="\0",
                          help="restore an archive into a ClearML account, or copy dataset versions",
                          description="See `clearml-assets restore --help`.")
    rest.add_argument("restore_args", nargs=argparse.REMAINDER)
    rest.set_defaults(func=_restore)


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
                                     "in the foreground; `start` runs it in the background (it keeps running until "
                                     "`stop`); `status` is a health check "
                                     "(exit 0 healthy, 1 not healthy, 3 not running). Data persists in the data "
                                     "directory; the key pair is generated once and kept there unless given. One "
                                     "data directory is served by one server at most.")
    srv.add_argument("action", nargs="?", choices=["serve", "start", "stop", "status"], default="serve",
                     help="what to do (default: serve)")
    srv.add_argument("--home", help="CLEARML_ASSETS_HOME whose server to use (data in HOME/server; default: "
                                    "$CLEARML_ASSETS_HOME or ~/.clearml_assets)")
    srv.add_argument("--data-dir", help="folder for the database and files (default: HOME/server)")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    kept = "the port this server was first started on (recorded in its data directory: links to it keep working)"
    srv.add_argument("--api-port", type=int, default=HOME_PORT,
                     help=f"API port, 0 for a free one (default: {kept}; at the first start 8008, or a free one)")
    srv.add_argument("--files-port", type=int, default=HOME_PORT,
                     help=f"fileserver port, 0 for a free one (default: {kept}; at the first start 8081, or a free "
                          "one)")
    srv.add_argument("--web-port", type=_port, default=HOME_PORT,
                     help=f"web view port, 0 for a free one, none for no web view (default: {kept}; at the first "
                          "start 8080, or a free one)")
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

    _add_demo_parsers(sub)
    from .cli_dagster import add_instance_parsers  # it imports this module's helpers

    add_instance_parsers(sub)
    _add_restore_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
