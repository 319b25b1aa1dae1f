"""Ultralytics under the training module's offline preparation: a real tiny training that makes no
network attempt; plus the pure parts (metric names, promotion rule, curves picture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clearml_assets.datasets.shapes import DEMO_CLASSES, format_yolo_label, render_demo_image
from clearml_assets.training.config import short_metric_name
from clearml_assets.training.curves import png_markdown, render_training_curves
from clearml_assets.training.registry import ClearMLModelRecord, decide_promotion


def _view(folder: Path, train: int, val: int, size: int) -> Path:
    for split, indices in (("train", range(train)), ("val", range(train, train + val))):
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
        for i in indices:
            image, boxes = render_demo_image(i, seed=5, size=size)
            image.save(folder / "images" / split / f"s{i}.png")
            (folder / "labels" / split / f"s{i}.txt").write_text(format_yolo_label(boxes))
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(DEMO_CLASSES))
    (folder / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames:\n{names}")
    return folder / "data.yaml"


@pytest.mark.timeout(240)
def test_tiny_training_makes_no_network_attempt(tmp_path):
    data_yaml = _view(tmp_path / "view", train=8, val=4, size=64)
    code = textwrap.dedent(f"""
        import json, socket, sys
        attempts = []
        def hook(event, args):
            if event in ("socket.getaddrinfo", "socket.connect"):
                host = str(args[0] if event == "socket.getaddrinfo" else args[1])
                if "127.0.0.1" not in host and "localhost" not in host:
                    attempts.append(f"{{event}} {{host}}")
        sys.addaudithook(hook)
        from pathlib import Path
        from clearml_assets.training.yolo import prepare_ultralytics
        prepare_ultralytics(Path({str(tmp_path / "ycfg")!r}))
        from ultralytics import YOLO, settings
        metrics = YOLO("yolov8n.yaml").train(data={str(data_yaml)!r}, epochs=1, imgsz=64, batch=4, device="cpu",
            workers=0, project={str(tmp_path / "runs")!r}, name="t", exist_ok=True, pretrained=False,
            amp=False, plots=True, verbose=False)
        seen = list(attempts)
        try:  # control: the hook does see a lookup
            socket.getaddrinfo("example.invalid", 443)
        except OSError:
            pass
        print("JSON", json.dumps({{"attempts": seen, "control": attempts[len(seen):], "sync": settings["sync"],
              "clearml": settings["clearml"], "metrics": sorted(metrics.results_dict)}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CLEARML_"))}
    env["HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("JSON ", 1)[1])
    assert out["attempts"] == []
    assert out["control"] == ["socket.getaddrinfo example.invalid"]
    assert out["sync"] is False and out["clearml"] is False
    assert "metrics/mAP50(B)" in out["metrics"]
    assert (tmp_path / "ycfg" / "Ultralytics" / "Arial.ttf").stat().st_size > 100_000
    assert (tmp_path / "runs" / "t" / "results.png").exists()  # plots were drawn with the local font


def test_metric_names():
    assert short_metric_name("mAP50-95") == "mAP50-95"
    assert short_metric_name("metrics/mAP50(B)") == "mAP50"
    with pytest.raises(ValueError, match="Unknown metric 'map'"):
        short_metric_name("map")


def test_promotion_rule_edge_cases():
    champ = ClearMLModelRecord(id="c", name="c", tags=("champion",), task=None, metadata={"mAP50": "0.6"})
    assert decide_promotion(0.6, champ, "mAP50").promote is False  # a tie keeps the champion
    assert decide_promotion(0.61, champ, "mAP50").promote is True
    unknown = ClearMLModelRecord(id="u", name="u", tags=("champion",), task=None, metadata={})
    decision = decide_promotion(0.1, unknown, "mAP50")
    assert decision.promote and decision.champion_value is None and "no recorded mAP50" in decision.reason
    assert decide_promotion(float("nan"), None, "mAP50").promote is False
    with pytest.raises(ValueError):
        decide_promotion(0.5, champ, "mAP50", rule="bigger")


def test_curves_picture_is_small_png():
    rows = [{"epoch": e, "train/box_loss": 3 - e * 0.1, "metrics/mAP50(B)": e / 20} for e in range(1, 21)]
    png = render_training_curves(rows, title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 80_000
    assert png_markdown(png).startswith("![training curves](data:image/png;base64,iVBOR")
