"""Archives: safe names, packing/verification and metric picking (no server needed)."""

from __future__ import annotations

import io
import math
import json
import os
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from clearml_assets.archives.manifest import hash_folder, verify_folder
from clearml_assets.archives.packing import ARCHIVE_FORMATS, extract_archive, verify_archive, write_archive
from clearml_assets.archives.paths import (original_name, project_export_dir, safe_component,
                                           task_export_dir)
from clearml_assets.archives.scalars import SeriesStats, classify_series, pick_metrics
from clearml_assets.errors import ArchiveError

HOSTILE = ["../../etc/passwd", "/etc/passwd", "a/b\\c", "..", ".", "", "nul\x00byte", "ctl\x01\x1b[31m\n",
           "x" * 300, "é" * 300, "😀/../😀", "CON", " spaced ", "trailing.", "%2e%2e", "~tilde", "a" * 119 + "~",
           "\u202eRTL", "C:\\Windows\\system32"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside_root_and_round_trip(tmp_path: Path, name: str):
    component = safe_component(name)
    assert component not in ("", ".", "..") and "/" not in component and "\0" not in component
    assert len(component.encode()) <= 120 and component.isprintable()
    back = original_name(component)
    assert back is None or back == name
    if len(name) < 30:
        assert back == name
    root = tmp_path / "root"
    for path in (task_export_dir(root, name, name, name, "abc123"), project_export_dir(root, name, name)):
        assert root.resolve() in path.parents
        path.mkdir(parents=True)
        assert path.is_dir() and root.resolve() in path.resolve().parents


@pytest.mark.parametrize("name", ["CON", "con", "nul.txt", "Aux . tar.gz", "LPT1", "com9.x", "prn.log"])
def test_windows_device_names_are_escaped_reversibly(name: str):
    component = safe_component(name)
    assert component.split(".")[0].rstrip(" ").upper() not in {"CON", "NUL", "AUX", "LPT1", "COM9", "PRN"}
    assert component.startswith("%") and original_name(component) == name
    assert safe_component("CONSOLE") == "CONSOLE" and safe_component("my con") == "my con"


def test_safe_names_are_injective():
    names = HOSTILE + ["a%2Fb", "a/b", "a~b", "%", "%25", "%43ON", "con", "Con", "x" * 299, "x" * 301, ".hidden", "%2Ehidden"]
    components = [safe_component(n) for n in names]
    assert len(set(components)) == len(set(names))


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "t.1"
    (folder / "scalars").mkdir(parents=True)
    (folder / "console.log").write_text("line\n" * 1000)
    (folder / "scalars" / "s.parquet").write_bytes(os.urandom(5000))
    (folder / "task.json").write_text(json.dumps({"name": "x"}))
    return folder


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_archive_matches_manifest_and_detects_tampering(tmp_path: Path, fmt: str):
    folder = _folder(tmp_path)
    files = hash_folder(folder)
    manifest = {"files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    dest = tmp_path / f"t.1.{fmt}"
    info = write_archive(folder, dest, files, fmt)
    manifest["archive"] = info
    assert info["size"] == dest.stat().st_size
    assert verify_archive(dest, manifest) == []
    assert verify_folder(folder, manifest) == []
    out = tmp_path / "out"
    extract_archive(dest, out)
    assert (out / "t.1" / "console.log").read_text() == "line\n" * 1000
    # a changed byte in a member, or a missing file, is reported
    (folder / "console.log").write_text("line\n" * 999 + "lime\n")
    assert any("console.log" in p for p in verify_folder(folder, manifest))
    with pytest.raises(ArchiveError):
        write_archive(folder, tmp_path / f"again.{fmt}", files, fmt)
    data = bytearray(dest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    assert verify_archive(dest, manifest)


def test_extract_refuses_escaping_members(tmp_path: Path):
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as zf:
        zf.writestr("ok/file.txt", "fine")
        zf.writestr("../escaped.txt", "bad")
    with pytest.raises(ArchiveError):
        extract_archive(evil_zip, tmp_path / "out1")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out1" / "ok").exists()
    abs_zip = tmp_path / "abs.zip"
    with zipfile.ZipFile(abs_zip, "w") as zf:
        zf.writestr("/tmp/abs.txt", "bad")
    with pytest.raises(ArchiveError):
        extract_archive(abs_zip, tmp_path / "out2")
    link_tar = tmp_path / "link.tar.gz"
    with tarfile.open(link_tar, "w:gz") as tf:
        info = tarfile.TarInfo("x/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
        data = b"bad"
        info = tarfile.TarInfo("x/../../up.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ArchiveError):
        extract_archive(link_tar, tmp_path / "out3")
    assert not (tmp_path / "up.txt").exists()


def test_yolo_metrics_are_picked_and_f1_computed():
    assert classify_series("val/metrics/mAP50(B)") == "mAP50"
    assert classify_series("val/metrics/mAP50-95(B)") == "mAP50-95"
    assert classify_series("val/metrics/precision(B)") == "precision"
    assert classify_series("val/metrics/recall(B)") == "recall"
    assert classify_series("train/box_loss") is None
    series = []
    for variant, values in (("metrics/precision(B)", [0.2, 0.8]), ("metrics/recall(B)", [0.1, 0.4]),
                            ("metrics/mAP50(B)", [0.3, float("nan")]), ("metrics/mAP50-95(B)", [0.1, 0.2])):
        stats = SeriesStats("val", variant)
        for i, v in enumerate(values):
            stats.add(i, v)
        series.append(stats)
    picked = pick_metrics(series)
    assert picked["precision"]["last"] == 0.8 and picked["recall"]["last"] == 0.4
    assert picked["F1"]["last"] == pytest.approx(2 * 0.8 * 0.4 / 1.2)
    assert picked["F1"]["source"].startswith("computed")
    assert picked["mAP50"]["last"] == "NaN" and picked["mAP50"]["max"] == 0.3
    assert picked["mAP50-95"]["max"] == 0.2


def test_series_stats_by_page_equal_point_by_point():
    nan, inf = float("nan"), float("inf")
    pages = [([0, 1, 2, 2], [0.5, -0.0, 0.0, 3.0]), ([5, 3, 5], [nan, 7.0, -inf]), ([], []),
             ([4, 5, 1], [7.0, 1.0, -2.0]), ([6], [nan])]
    one, many = SeriesStats("m", "v"), SeriesStats("m", "v")
    for iters, values in pages:
        for i, v in zip(iters, values):
            one.add(i, v)
        many.add_many(iters, values)
    assert repr(one.as_dict()) == repr(many.as_dict())
    assert many.as_dict()["max_iter"] == 3 and many.count == 11 and many.non_finite == 3
    assert many.last_iter == 6 and math.isnan(many.last)


def test_console_text_is_what_the_ui_shows():
    from clearml_assets.archives.logs import ConsoleText

    out = io.BytesIO()
    console = ConsoleText(out)
    for msg in ["\x1b[1;32mready\x1b[0m", "loss 1\rloss 2\rloss 3", "\rloss 4\n", "done\nnext", "\r\x1b[2Kfinal\n",
                "kept\n", "\rnot a rewrite\n"]:
        console.add(msg)
    console.close()
    assert out.getvalue().decode().splitlines() == ["ready", "loss 4", "done", "final", "kept", "not a rewrite"]
    assert console.lines == 6


def test_file_locations_aliases_object_stores_and_external():
    from clearml_assets.storage import classify, options_for
    from clearml_assets.storage.credentials import object_access

    files = "http://127.0.0.1:8081"
    assert classify("http://localhost:8081/p/a.bin", files).url == "http://127.0.0.1:8081/p/a.bin"
    assert classify("http://localhost:8082/p/a.bin", files).kind == "external"  # another port
    assert classify("https://files.example.com/p/a.bin", files, ["https://files.example.com"]).url \
        == "http://127.0.0.1:8081/p/a.bin"  # a configured alias, rewritten onto the account's host
    assert classify("http://127.0.0.1:8081/a/../../etc/passwd", files).kind == "external"
    assert classify("http://user:pw@127.0.0.1:8081/p/a.bin", files).kind == "external"
    for uri in ("s3://bucket/k", "gs://bucket/k", "azure://acct.blob.core.windows.net/c/k"):
        assert classify(uri, files).kind == "object_store"
    for uri in ("file:///etc/passwd", "https://example.org/a.png", "ftp://h/x", "/abs/path", ""):
        where = classify(uri, files)
        assert where.kind == "external" and where.reason
    minio = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    assert object_access("s3://127.0.0.1:9000/bucket/a/b", minio).path == "bucket/a/b"
    assert object_access("s3://my.bucket/a/b", {"key": "k", "secret": "s"}).path == "my.bucket/a/b"
    options = {"s3://": {"key": "generic"}, "s3://bucket": {"key": "specific"}}
    assert options_for("s3://bucket/x", options) == {"key": "specific"}
    assert options_for("s3://other/x", options) == {"key": "generic"} and options_for("gs://b/x", options) == {}


def test_event_paging_survives_a_restart_at_iteration_0():
    from clearml_assets.archives.events import PagingReport, iter_task_events

    stored = [{"iter": 0, "n": i} for i in range(4)] + [{"iter": i, "n": 10 + i} for i in (1, 2, 2, 3)]

    class RealScroll:
        """clearml-server's get_task_events: whole iterations a page, restart when a page ends at 0."""

        def task_events_page(self, task_id, event_type, *, batch_size, order="asc", scroll_id=None, **_):
            rows = stored if order == "asc" else sorted(stored, key=lambda e: -e["iter"])
            start = 0 if not scroll_id or not scroll_id[1] else \
                next(i for i, e in enumerate(rows) if (e["iter"] > scroll_id[1] if order == "asc"
                                                       else e["iter"] < scroll_id[1]))
            page = rows[start:start + batch_size]
            if page:
                page += [e for e in rows[start + batch_size:] if e["iter"] == page[-1]["iter"]]
            return {"events": page, "total": len(stored), "scroll_id": ("s", page[-1]["iter"] if page else None)}

    report = PagingReport()
    got = [e for page in iter_task_events(SimpleNamespace(events=RealScroll()), "t", "plot", report, batch_size=2)
           for e in page]
    assert sorted(e["n"] for e in got) == sorted(e["n"] for e in stored)
    assert report.restarts == 1 and report.received == len(stored) and report.issues
