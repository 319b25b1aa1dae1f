"""The Ultralytics layout of a training view: ``train.txt``/``val.txt`` image lists and ``data.yaml``.

The view keeps the curated files at their curated paths (``images/<frame>.png`` with
``labels/<frame>.txt``) and names each split in a list file. ClearML matches a child's files to its
parent's by path and hash, so keeping the paths lets the view version store only what it adds
(the lists, data.yaml, the manifest) and drop what the query leaves out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from ..errors import DatasetValidationError
from .curation import link_or_copy
from .manifest import write_manifest

DATA_YAML = "data.yaml"
VIEW_JSON = "view.json"
SPLITS = ("train", "val")


@dataclass
class TrainingViewFolder:
    """What ``write_training_view`` produced."""

    folder: Path
    manifest: pd.DataFrame
    data_yaml: Path


def data_yaml_text(class_names: tuple[str, ...]) -> str:
    """``data.yaml`` for Ultralytics.

    There is deliberately no ``path:`` key: Ultralytics 8.x resolves a relative ``path`` (even
    ``.``) against the process's working directory, while without it it uses the folder holding
    ``data.yaml``, so the copy works from wherever it is downloaded.
    """
    names = "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(class_names))
    return f"train: train.txt\nval: val.txt\nnc: {len(class_names)}\nnames:\n{names}"


def split_list_name(split: str) -> str:
    """The list file of a split (``train.txt``); its lines are ``./images/<frame>.png``."""
    return f"{split}.txt"


def write_training_view(curated: Path, manifest: pd.DataFrame, train_mask: pd.Series, val_mask: pd.Series,
                        class_names: tuple[str, ...], out: Path, *, view_info: dict) -> TrainingViewFolder:
    """Lay out the selected frames for Ultralytics.

    Args:
        curated: Local copy of the curated dataset (holds the files the manifest names).
        manifest: The curated manifest.
        train_mask: Rows selected for training.
        val_mask: Rows selected for validation.
        class_names: Class names by id (ids unchanged, so a class filter keeps the label ids).
        out: Empty target folder.
        view_info: Written to ``view.json`` (queries, source dataset id).

    Raises:
        DatasetValidationError: A frame is selected for both train and val, or a file is missing.
    """
    both = manifest[train_mask & val_mask]
    if len(both):
        raise DatasetValidationError(
            f"{len(both)} frame(s) are selected by both train_query and val_query (e.g. "
            f"{', '.join(both['frame_id'].head(5))}); make the queries disjoint, e.g. add "
            "split == \"train\" / split == \"val\".")
    rows = []
    lists: dict[str, list[str]] = {split: [] for split in SPLITS}
    for split, mask in (("train", train_mask), ("val", val_mask)):
        for row in manifest[mask].to_dict("records"):
            for rel in (row["image"], row["label"]):
                if not (curated / rel).is_file():
                    raise DatasetValidationError(
                        f"Curated copy {curated} lacks {rel} named by its manifest; the curated "
                        "version is incomplete, re-materialize it.")
                link_or_copy(curated / rel, out / rel)
            lists[split].append(f"./{PurePosixPath(row['image'])}")
            rows.append({**row, "split": split, "curated_image": row["image"]})
    for split in SPLITS:
        (out / split_list_name(split)).write_text("".join(f"{line}\n" for line in sorted(lists[split])))
    view = pd.DataFrame(rows, columns=[*manifest.columns, "curated_image"])
    view = view.sort_values(["split", "frame_id"], kind="stable").reset_index(drop=True)
    write_manifest(view, out)
    (out / DATA_YAML).write_text(data_yaml_text(class_names))
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in class_names))
    (out / VIEW_JSON).write_text(json.dumps(view_info, indent=2, sort_keys=True) + "\n")
    return TrainingViewFolder(folder=out, manifest=view, data_yaml=out / DATA_YAML)
