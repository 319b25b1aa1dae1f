"""Benchmark: the YOLO model asset's wall time against bare ``YOLO.train`` on the same data.

Both sides train the same generated shapes data set with the same epochs, image size, batch and
seed, side by side in one run, interleaved (bare, asset, asset, bare, ...; ``--pairs``), the asset through
``dg.materialize`` against an embedded local ClearML server. The asset side additionally spawns its child, creates the ClearML
task, downloads the dataset version, logs everything, uploads the weights and closes the task.

Target: asset wall time <= 1.10 x bare ``YOLO.train`` wall time. Also prints the mAP50 reached.

    python benchmarks/bench_training.py [--images 160] [--epochs 30] [--imgsz 128] [--batch 16] [--pairs 2]

With ``--remote``: instead, a real ``clearml-agent daemon`` (virtualenv mode, this Python) serves a queue
of the embedded server, and one run prints side by side (a) enqueue-to-start latency of trivial tasks
(``tasks.enqueue`` to the agent's ``tasks.started``) and (b) the model asset with ``execution: local``
against ``execution: queue`` for the same epochs, interleaved (``--pairs``).

    python benchmarks/bench_training.py --remote [--images 32] [--epochs 2] [--imgsz 64] [--pairs 1] [--latency 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.10


def bare_train(data_yaml: str, work_dir: str, settings: dict) -> dict:
    """Plain Ultralytics training (same offline preparation as the asset); runs in a spawned child."""
    from clearml_assets.training.yolo import prepare_ultralytics

    work = Path(work_dir)
    prepare_ultralytics(work / "ultralytics_config")
    from ultralytics import YOLO

    model = YOLO(settings["model_yaml"])
    started = time.monotonic()
    metrics = model.train(data=data_yaml, epochs=settings["epochs"], imgsz=settings["imgsz"],
                          batch=settings["batch"], device="cpu", workers=0, seed=settings["seed"],
                          deterministic=True, close_mosaic=settings["close_mosaic"], project=str(work / "runs"),
                          name="train", exist_ok=True, pretrained=False, amp=False, plots=True, verbose=False)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "mAP50": float(metrics.results_dict["metrics/mAP50(B)"]),
            "mAP50-95": float(metrics.results_dict["metrics/mAP50-95(B)"])}


def upload_view(folder: str) -> str:
    """Upload ``folder`` as one finalized ClearML dataset version; runs in a spawned SDK child."""
    from clearml import Dataset

    dataset = Dataset.create(dataset_project="bench_training_data", dataset_name="bench_view")
    dataset.add_files(folder)
    dataset.upload(show_progress=False)
    dataset.finalize()
    return dataset.id


def write_view(folder: Path, images: int, size: int, seed: int = 0) -> Path:
    from clearml_assets.datasets.shapes import DEMO_CLASSES, format_yolo_label, render_demo_image

    val = max(8, images // 4)
    for split, indices in (("train", range(images)), ("val", range(images, images + val))):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in indices:
            image, boxes = render_demo_image(i, seed=seed, size=size)
            image.save(folder / "images" / split / f"shape_{i:05d}.png")
            (folder / "labels" / split / f"shape_{i:05d}.txt").write_text(format_yolo_label(boxes))
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(DEMO_CLASSES))
    (folder / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames:\n{names}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160, help="training images (val adds a quarter)")
    parser.add_argument("--size", type=int, default=160, help="generated image side in pixels")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=2, help="interleaved bare/asset pairs")
    parser.add_argument("--remote", action="store_true", help="agent latency and local vs queue training")
    parser.add_argument("--latency", type=int, default=5, help="trivial tasks for the enqueue-to-start latency")
    args = parser.parse_args(argv)
    if args.remote:
        return remote_main(args)

    import dagster as dg

    from clearml_assets.local_server import LocalServer
    from clearml_assets.resource import ClearMLResource
    from clearml_assets.sdk_process import run_in_sdk_process
    from clearml_assets.training import build_training_defs

    load_before = f"{os.getloadavg()[0]:.2f}"
    tmp = Path(tempfile.mkdtemp(prefix="bench_training_"))
    server = LocalServer(tmp / "server", api_port=0, files_port=0)
    server.start()
    try:
        resource = ClearMLResource.for_local_server(server.info, home=str(tmp / "res"))
        env = resource.sdk_env()
        view = write_view(tmp / "view", args.images, args.size, args.seed)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        dataset_id = run_in_sdk_process("bench_training:upload_view", str(view), env=env, timeout=600,
                                        what="benchmark dataset upload")
        settings = {"model_yaml": "yolov8n.yaml", "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch,
                    "seed": args.seed, "close_mosaic": 10}
        defs = build_training_defs(project="bench_training")
        config = {**settings, "dataset_id": dataset_id, "workers": 0, "device": "cpu"}

        def bare_run(n: int) -> dict:
            started = time.monotonic()
            out = run_in_sdk_process("bench_training:bare_train", str(view / "data.yaml"), str(tmp / f"bare{n}"),
                                     settings, env=env, timeout=7200, what="bare YOLO.train")
            return {**out, "process_seconds": time.monotonic() - started}

        def asset_run() -> dict:
            started = time.monotonic()
            result = dg.materialize(defs.assets, resources={"clearml": resource},
                                    run_config={"ops": {"training__shapes_yolo": {"config": config}}})
            seconds = time.monotonic() - started
            (mat,) = result.asset_materializations_for_node("training__shapes_yolo")
            return {"seconds": seconds, **{k: getattr(v, "value", v) for k, v in mat.metadata.items()}}

        # Interleaved (bare, asset, asset, bare, ...): drift in the machine's load hits both sides alike.
        pairs = []
        for n in range(args.pairs):
            if n % 2 == 0:
                bare, asset = bare_run(n), asset_run()
            else:
                asset = asset_run()
                bare = bare_run(n)
            pairs.append((bare, asset))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"data: {args.images} train images ({args.size}px), epochs={args.epochs}, imgsz={args.imgsz}, "
          f"batch={args.batch}, seed={args.seed}, yolov8n from scratch, CPU; load average before: {load_before}, "
          f"after: {os.getloadavg()[0]:.2f}")
    for n, (bare, asset) in enumerate(pairs):
        print(f"pair {n + 1}: bare YOLO.train {bare['seconds']:7.1f} s (its whole process {bare['process_seconds']:.1f} s)"
              f", mAP50={bare['mAP50']:.3f} mAP50-95={bare['mAP50-95']:.3f} | asset {asset['seconds']:7.1f} s "
              f"(training {asset['train_seconds']:.1f} s, child {asset['child_seconds']:.1f} s, close "
              f"{asset['task_close_seconds']:.2f} s), mAP50={asset['metric_mAP50']:.3f} "
              f"mAP50-95={asset['metric_mAP50-95']:.3f}")
        print(f"        ratio asset / YOLO.train call {asset['seconds'] / bare['seconds']:.3f}; asset / bare process "
              f"{asset['seconds'] / bare['process_seconds']:.3f}; child phases (s): {asset['child_phase_seconds']}")
    ratio = sum(a["seconds"] for _, a in pairs) / sum(b["seconds"] for b, _ in pairs)
    process_ratio = sum(a["seconds"] for _, a in pairs) / sum(b["process_seconds"] for b, _ in pairs)
    print(f"ratio asset / bare YOLO.train over {len(pairs)} pairs: {ratio:.3f} (target <= {TARGET_RATIO:.2f}) "
          f"{'OK' if ratio <= TARGET_RATIO else 'OVER TARGET'}; asset / bare process (imports included): "
          f"{process_ratio:.3f}")
    return 0 if ratio <= TARGET_RATIO else 1


def _epoch_seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def remote_main(args: argparse.Namespace) -> int:
    """Enqueue-to-start latency and local vs queue training, with a real agent on the embedded server."""
    import dagster as dg

    from clearml_assets.local_server import LocalServer
    from clearml_assets.pipes import start_local_agent
    from clearml_assets.resource import ClearMLResource
    from clearml_assets.sdk_process import run_in_sdk_process
    from clearml_assets.training import build_training_defs

    load_before = f"{os.getloadavg()[0]:.2f}"
    tmp = Path(tempfile.mkdtemp(prefix="bench_training_remote_"))
    server = LocalServer(tmp / "server", api_port=0, files_port=0)
    server.start()
    repo = str(Path(__file__).resolve().parents[1])
    agent = None
    try:
        resource = ClearMLResource.for_local_server(server.info, home=str(tmp / "res"))
        client, env = resource.client(), resource.sdk_env()
        agent = start_local_agent("bench_q", env, tmp / "agent", worker="bench-agent",
                                  extra_env={"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))})
        while not any(w["id"] == "bench-agent" for w in client.session.call("workers.get_all")["workers"]):
            time.sleep(0.1)
        queue = next(q["id"] for q in client.session.call("queues.get_all", name="^bench_q$")["queues"])
        latencies = []
        for n in range(args.latency):
            task = client.session.call("tasks.create", name=f"latency {n}", type="testing",
                                       script={"entry_point": "noop.py", "working_dir": ".",
                                               "diff": "print('ok')\n"})["id"]
            enqueued = time.time()
            client.session.call("tasks.enqueue", task=task, queue=queue)
            while True:
                doc = client.session.call("tasks.get_all", id=[task], only_fields=["status", "started"])["tasks"][0]
                if doc["status"] in ("completed", "failed", "stopped"):
                    break
                time.sleep(0.1)
            latencies.append(_epoch_seconds(doc["started"]) - enqueued)

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        view = write_view(tmp / "view", args.images, args.size, args.seed)
        dataset_id = run_in_sdk_process("bench_training:upload_view", str(view), env=env, timeout=600,
                                        what="benchmark dataset upload")
        defs = build_training_defs(project="bench_training")
        base = {"model_yaml": "yolov8n.yaml", "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch,
                "seed": args.seed, "close_mosaic": 1, "dataset_id": dataset_id, "workers": 0, "device": "cpu"}

        def asset_run(execution: str) -> dict:
            config = {**base, "execution": execution, "queue": "bench_q"}
            started = time.monotonic()
            result = dg.materialize(defs.assets, resources={"clearml": resource},
                                    run_config={"ops": {"training__shapes_yolo": {"config": config}}})
            (mat,) = result.asset_materializations_for_node("training__shapes_yolo")
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            return {"seconds": time.monotonic() - started, **meta}

        pairs = []
        for n in range(args.pairs):
            first, second = ("local", "queue") if n % 2 == 0 else ("queue", "local")
            runs = {first: asset_run(first)}
            runs[second] = asset_run(second)
            pairs.append(runs)
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    latencies.sort()
    print(f"embedded server + clearml-agent (virtualenv mode, this Python), CPU; load average before: "
          f"{load_before}, after: {os.getloadavg()[0]:.2f}")
    print(f"enqueue -> agent started the task, {len(latencies)} trivial tasks: median "
          f"{latencies[len(latencies) // 2]:.2f} s, min {latencies[0]:.2f} s, max {latencies[-1]:.2f} s")
    print(f"training: {args.images} images, epochs={args.epochs}, imgsz={args.imgsz}, batch={args.batch}")
    for n, runs in enumerate(pairs):
        local, queue = runs["local"], runs["queue"]
        print(f"pair {n + 1}: local {local['seconds']:7.1f} s (YOLO.train {local['train_seconds']:.1f} s, mAP50-95 "
              f"{local['metric_mAP50-95']:.3f}) | queue {queue['seconds']:7.1f} s (YOLO.train "
              f"{queue['train_seconds']:.1f} s, mAP50-95 {queue['metric_mAP50-95']:.3f}) | queue/local "
              f"{queue['seconds'] / local['seconds']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
