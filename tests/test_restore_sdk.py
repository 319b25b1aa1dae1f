"""A task reported by the real SDK (scalars, console text, a plot, a debug image, artifacts, an output
model, connected hyperparameters and configuration) round-trips through archive -> restore into another
account -> archive, and the SDK in the target account reads the copy: its scalars, artifact and weights."""

from __future__ import annotations

import textwrap

from conftest import printed_json, run_sdk_script, sdk_env
from seeding import client_of
from test_restore_roundtrip import compare_exports

from clearml_assets.archives.exporter import ClearMLTaskExporter
from clearml_assets.local_server import LocalServer
from clearml_assets.restore.engine import TaskRestorer


def test_sdk_reported_task_round_trips_and_the_sdk_reads_the_copy(clearml_server, sdk_report, tmp_path):
    facts = sdk_report("""
        import os
        import numpy as np
        from clearml import Task, OutputModel
        task = Task.init(project_name="sdk/rt", task_name="sdk round trip", reuse_last_task_id=False,
                         output_uri=True)
        task.connect({"lr": 0.01, "epochs": 3}, name="Args")
        task.connect_configuration({"layers": [1, 2, 3]}, name="model cfg")
        logger = task.get_logger()
        for i in range(300):
            logger.report_scalar("loss", "train", value=1 / (i + 1), iteration=i)
        for i in range(50):
            logger.report_text(f"LINE {i:03d}", print_console=False)
        logger.report_scatter2d("curve", "pr", iteration=0, scatter=np.array([[0, 1], [1, 0.5]]))
        logger.report_image("samples", "batch", iteration=1, image=np.full((8, 8, 3), 7, dtype=np.uint8))
        with open("blob.bin", "wb") as f:
            f.write(os.urandom(100_000))
        task.upload_artifact("blob", artifact_object="blob.bin", wait_on_upload=True)
        with open("w.pt", "wb") as f:
            f.write(os.urandom(30_000))
        model = OutputModel(task=task, name="best", label_enumeration={"cat": 0, "dog": 1})
        model.update_weights("w.pt", auto_delete_file=False)
    """, "blob.bin", "w.pt", timeout=300)
    with LocalServer(tmp_path / "b", api_port=0, files_port=0) as b:
        source = client_of(clearml_server, "personal")
        target = client_of(b, "original")
        exported = ClearMLTaskExporter(source, "personal", tmp_path / "x").export_task(facts["id"])
        (result,) = TaskRestorer(target).restore_path(exported.archive)
        copy = ClearMLTaskExporter(target, "original", tmp_path / "x").export_task(result.task_id)
        diff = compare_exports(exported.folder, copy.folder)
        different = diff["different"]
        if not (exported.folder / "log.jsonl").exists():
            # an archive without log.jsonl keeps the log's text, not its event boundaries (the SDK sends
            # many lines per event): counts may differ, every file's bytes may not
            different = [d for d in different if not (isinstance(d, tuple) and d[0] == "manifest.json" and {
                k for k in set(d[2]) | set(d[3]) if d[2].get(k) != d[3].get(k)} <= {"log_lines", "log_events"})]
            assert (exported.folder / "console.log").read_bytes() == (copy.folder / "console.log").read_bytes()
        assert different == [] and not diff["only_a"] and not diff["only_b"], diff
        assert copy.counts["scalar_points"] == 300 and copy.counts["model_files"] == 1
        assert copy.counts["debug_image_files"] == exported.counts["debug_image_files"] >= 1

        read = run_sdk_script(textwrap.dedent(f"""
            import hashlib, json
            from clearml import Task
            task = Task.get_task(task_id={result.task_id!r})
            scalars = task.get_reported_scalars()
            blob = task.artifacts["blob"].get_local_copy()
            weights = task.models["output"][-1].get_local_copy()
            print(json.dumps({{"points": len(scalars["loss"]["train"]["x"]),
                              "blob": hashlib.sha256(open(blob, "rb").read()).hexdigest(),
                              "w": hashlib.sha256(open(weights, "rb").read()).hexdigest(),
                              "params": task.get_parameters_as_dict().get("Args")}}))
        """), sdk_env(b.info, tmp_path / "home_b"), timeout=300, cwd=tmp_path)
        got = printed_json(read)
        assert got["points"] == 300 and got["blob"] == facts["blob"] and got["w"] == facts["w"]
        assert got["params"] == {"lr": "0.01", "epochs": "3"}
