"""What a user would run instead of edgecv: Ultralytics ``predict`` on the same OpenVINO model files and the
same images. Runs in its own virtual environment (Ultralytics needs PyTorch and torchvision; edgecv does
not), called by ``scripts/bench.py`` (part ``peer``); imports nothing from edgecv.

    PEER/bin/python scripts/peer_ultralytics.py --model DIR_openvino_model --conf 0.25 IMAGE...

DIR_openvino_model holds model.xml/.bin and the metadata.yaml Ultralytics reads (bench.py writes it from
the package's model.json). Prints one JSON line: images, seconds, images_per_s (after a warm-up of three
images, which are not counted), boxes per image and the Ultralytics version.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def f32_under_isa_cap() -> None:
    """Under ``ONEDNN_MAX_CPU_ISA`` (bench.py --isa) OpenVINO still picks bf16 from the CPU's flags, which
    the capped oneDNN cannot run (garbage: 300 boxes per image). edgecv forces f32 then; so does the peer."""
    if not os.environ.get("ONEDNN_MAX_CPU_ISA"):
        return
    import openvino as ov

    compile_model = ov.Core.compile_model

    def f32(self, model, device_name=None, config=None, *args, **kwargs):
        config = {**(config or {}), "INFERENCE_PRECISION_HINT": "f32"}
        return compile_model(self, model, device_name, config, *args, **kwargs)

    ov.Core.compile_model = f32


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    f32_under_isa_cap()
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(a.model, task="detect")
    kw = dict(conf=a.conf, iou=a.iou, verbose=False, save=False)
    for path in a.images[:3]:  # warm-up: model compile, first allocations
        model.predict(path, **kw)
    boxes = 0
    t0 = time.perf_counter()
    for result in model.predict(
        a.images, stream=True, **kw
    ):  # the streaming form the docs recommend for many images
        boxes += len(result.boxes)
    seconds = time.perf_counter() - t0
    n = len(a.images)
    print(
        json.dumps(
            {
                "images": n,
                "seconds": seconds,
                "images_per_s": n / seconds,
                "boxes_per_image": boxes / n,
                "ultralytics": ultralytics.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
