"""The ``clearml-assets`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path(os.environ.get("CLEARML_ASSETS_HOME", "~/.clearml_assets")).expanduser()


def _local_server(args: argparse.Namespace) -> int:
    from .local_server import Credential, LocalServer
    from .local_server.runner import write_server_file

    key = args.access_key or os.environ.get("CLEARML_ASSETS_SERVER_ACCESS_KEY")
    secret = args.secret_key or os.environ.get("CLEARML_ASSETS_SERVER_SECRET_KEY")
    if bool(key) != bool(secret):
        print("error: --access-key and --secret-key go together", file=sys.stderr)
        return 2
    creds = [Credential(key, secret)] if key else None
    server = LocalServer(Path(args.data_dir), host=args.host, api_port=args.api_port,
                         files_port=args.files_port, credentials=creds)
    info = server.info
    write_server_file(server.data_dir, info, os.getpid())
    if not args.quiet:
        print(f"ClearML-compatible local server, data in {server.data_dir}")
        print("Set these for a ClearML client:")
        for name, value in info.env().items():
            print(f"  export {name}={value}")
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {args.host}, not loopback only", file=sys.stderr)
        print("Ctrl+C stops it.", flush=True)
    server.serve_forever()
    return 0


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
                           train_epochs=args.epochs)
    except ClearMLAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\nclearml-assets demo finished:")
    for name, value in summary.items():
        print(f"  {name}: {value}")
    print(f"\nSee it in the Dagster UI: DAGSTER_HOME={summary['dagster_home']} dagster dev")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clearml-assets``."""
    parser = argparse.ArgumentParser(
        prog="clearml-assets",
        description="Dagster assets for ClearML, with an embedded local ClearML-compatible server.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    srv = sub.add_parser("local-server", help="run the local ClearML-compatible server in the foreground",
                         description="Serve the ClearML REST API and a fileserver from a local folder. "
                                     "Data persists in --data-dir; the key pair is generated once and "
                                     "kept there unless --access-key/--secret-key are given.")
    srv.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR / "server"),
                     help="folder for the database and files (default: %(default)s)")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    srv.add_argument("--api-port", type=int, default=8008, help="API port (default: %(default)s)")
    srv.add_argument("--files-port", type=int, default=8081, help="fileserver port (default: %(default)s)")
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
    run.set_defaults(func=_demo)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
