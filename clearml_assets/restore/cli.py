"""``clearml-assets restore``: an archive back into a ClearML account, or dataset versions from one account
into another. The last line printed is JSON with the new task (or dataset version) ids."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..errors import ClearMLAssetsError


def build_restore_parser(prog: str = "clearml-assets restore") -> argparse.ArgumentParser:
    """The arguments of ``clearml-assets restore``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Restore a task or project archive made by clearml-assets into a ClearML "
                               "account (a second run changes nothing; a run that died half-way is finished), "
                               "or copy dataset versions with their parent chain from another account "
                               "(--dataset ID --from ACCOUNT). The last line printed is JSON with the new ids.")
    parser.add_argument("archive", nargs="?", help="task or project archive (.zip/.tar.gz/.tar.xz/.tar) or export folder")
    parser.add_argument("--account", required=True, help="target ClearML account (e.g. original, local)")
    parser.add_argument("--project", help="target project (full name, e.g. team/restored): the copies and the "
                                          "files they re-upload go there; default: the source project's name")
    parser.add_argument("--dataset", help="copy this dataset version (and its parents) instead of an archive")
    parser.add_argument("--from", dest="source", help="source account of --dataset")
    parser.add_argument("--workers", type=int, default=4, help="uploads and event batches in flight "
                                                               "(default: %(default)s)")
    return parser


def restore_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``clearml-assets restore`` (the lead's cli.py passes the sub-command's arguments)."""
    parser = build_restore_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if bool(args.archive) == bool(args.dataset):
        parser.error("give an ARCHIVE, or --dataset ID with --from ACCOUNT")
    if args.dataset and not args.source:
        parser.error("--dataset needs --from ACCOUNT (the account the version is read from)")
    from ..resource import ClearMLResource

    clearml = ClearMLResource.from_env()
    try:
        if args.dataset:
            from .datasets import copy_dataset_version

            copied = copy_dataset_version(clearml, args.source, args.account, args.dataset, project=args.project)
            for row in copied:
                print(f"dataset version {row['source_id']} -> {row['id']} "
                      f"({'unchanged' if row['unchanged'] else 'copied'})", file=sys.stderr)
            print(json.dumps({"account": args.account, "dataset_id": copied[-1]["id"],
                              "versions": copied}))
            return 0
        from .engine import TaskRestorer

        restorer = TaskRestorer(clearml.client(args.account), project=args.project, max_workers=args.workers)
        results = restorer.restore_path(args.archive)
    except ClearMLAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        state = "unchanged (already restored)" if r.unchanged else "resumed and finished" if r.resumed else "restored"
        print(f"task {r.source_task_id} -> {r.task_id} in {r.project!r}: {state}; "
              f"{json.dumps(r.counts, sort_keys=True)}" + (f" notes: {'; '.join(r.notes)}" if r.notes else ""),
              file=sys.stderr)
    summary = {"account": args.account, "task_id": results[-1].task_id if len(results) == 1 else None,
               "tasks": [{"source_task_id": r.source_task_id, "task_id": r.task_id, "created": r.created,
                          "resumed": r.resumed, "unchanged": r.unchanged, "web_url": r.web_url} for r in results]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(restore_main())
