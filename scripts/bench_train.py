#!/usr/bin/env python3
"""Issue 26's targets for `edgecv models train`, on this CPU. Needs torch (pip install torch==2.13.0) and
the train extra.

- ``--task plain-shelves`` (default): from shelf-detection-v2 on a shelf drawing style it has never seen
  (scripts/heldout/shelves_plain.py: 200 training + 50 validation images, 1280x720, two classes: product,
  price-tag). Target: val mAP50 >= 0.90 within 30 minutes.
- ``--task facade-kinds``: from building-inspection-v1 on a new class set (scripts/heldout/facade_kinds.py:
  300 images, no split given, so the command makes one; five kinds the model was never taught:
  satellite-dish, wall-lamp, vent-grille, awning, security-camera). Target: val mAP50 >= 0.85 within 45
  minutes.

    python scripts/bench_train.py [--task plain-shelves|facade-kinds] [--minutes M] [--threads 1]
                                  [--work /tmp/bench-train] [--from MODEL]

Prints the CPU's vector extensions, the validation mAP50 / mAP50-95 as training went (minute by minute),
the final INT8 and FP32 figures and the INT8 loss, wall-clock time of each stage and the peak memory
(max RSS) of the process. Both tasks: INT8 loss <= 1 mAP50-95 point, memory <= 4 GB. Prints figures only; nothing here passes or fails. Installs into a data dir under --work,
never into yours.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from heldout import facade_kinds, shelves_plain  # noqa: E402

from edgecv.config import load_config  # noqa: E402
from edgecv.threads import cpu_flags_text  # noqa: E402
from edgecv.training.custom import TrainRequest, train_custom  # noqa: E402
from edgecv.training.dataset import check_dataset  # noqa: E402

TASKS = {
    # task -> (base model, training minutes, drawn images: train, val (0: the command splits))
    "plain-shelves": ("shelf-detection-v2", 27.0, 200, 50),
    "facade-kinds": ("building-inspection-v1", 40.0, 300, 0),
}


def make_facade_kinds(root: Path, count: int) -> Path:
    """A YOLO folder without a split (images/, labels/, names.txt), as a labelling tool exports it."""
    if not (root / "names.txt").is_file():
        facade_kinds.write_set(root, count, seed=26100)
    return root


def make_data(root: Path, train: int, val: int) -> Path:
    """A YOLO folder with a given split: images/{train,val}, labels/{train,val}, data.yaml."""
    if (root / "data.yaml").is_file():
        return root
    for split, count, seed in (("train", train, 26000), ("val", val, 26001)):
        tmp = shelves_plain.write_set(root / f"tmp-{split}", count, seed)
        for kind in ("images", "labels"):
            (root / kind).mkdir(parents=True, exist_ok=True)
            (tmp / kind).rename(root / kind / split)
    (root / "data.yaml").write_text("names:\n  0: product\n  1: price-tag\n")
    return root


def memory() -> str:
    """This process's resident memory now and its peak so far (VmRSS, VmHWM), for the stage lines."""
    fields = dict(ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines() if ":" in ln)
    mb = {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM") if k in fields}
    return f"[memory now {mb.get('VmRSS', '?')} MB, peak so far {mb.get('VmHWM', '?')} MB]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TASKS), default="plain-shelves")
    ap.add_argument("--minutes", type=float, default=None, help="training budget (export + eval come after)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-train"))
    ap.add_argument("--from", dest="base", default=None, help="base model (default: the task's)")
    ap.add_argument("--train-count", type=int, default=None)
    ap.add_argument("--val-count", type=int, default=None)
    ap.add_argument("--imgsz", default=None, help="WxH (default: the base model's, 640x384)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"CPU: {cpu_flags_text()}", flush=True)
    base, minutes, n_train, n_val = TASKS[a.task]
    a.base, a.minutes = a.base or base, a.minutes if a.minutes is not None else minutes
    n_train = a.train_count if a.train_count is not None else n_train
    n_val = a.val_count if a.val_count is not None else n_val
    print(f"task {a.task}: from {a.base}, {a.minutes} min of training", flush=True)
    t0 = time.time()
    if a.task == "facade-kinds":
        data = make_facade_kinds(a.work / "data", n_train)
    else:
        data = make_data(a.work / "data", n_train, n_val)
    print(f"data: {data} ({time.time() - t0:.0f} s to draw)", flush=True)
    cfg = load_config(overrides={"data_dir": a.work / "edgecv-data"})
    t1 = time.time()
    check = check_dataset(data)
    print("\n".join(check.report()), flush=True)
    size = tuple(int(v) for v in a.imgsz.split("x")) if a.imgsz else None
    request = TrainRequest(data, f"bench-{a.task}", a.base, a.minutes, size, a.threads, force=True)
    result = train_custom(request, cfg, check, stage=lambda s: print(f"{s} {memory()}", flush=True))
    total = time.time() - t1
    r = result.report
    print("\n== figures ==")
    print(f"CPU: {cpu_flags_text()}; threads {a.threads}")
    print(f"data check + load: see log; whole command {total / 60:.1f} min (training budget {a.minutes} min)")
    for h in r["training"].get("history", []):
        print(
            f"  val at {h['minutes']:5.1f} min (step {h['step']}): mAP50 {h['mAP50']:.3f}, mAP50-95 {h['mAP50_95']:.3f}"
        )
    print(f"final (torch, EMA): {json.dumps(r['training'].get('val', {}))}")
    print(f"INT8 (OpenVINO): mAP50 {r['int8']['mAP50']:.3f}, mAP50-95 {r['int8']['mAP50_95']:.3f}")
    print(f"FP32 (OpenVINO f32): mAP50 {r['fp32']['mAP50']:.3f}, mAP50-95 {r['fp32']['mAP50_95']:.3f}")
    print(f"ONNX Runtime INT8: mAP50 {r['onnxInt8']['mAP50']:.3f}, mAP50-95 {r['onnxInt8']['mAP50_95']:.3f}")
    print(
        f"INT8 loss: {r['int8LossMAP50_95Points']:.2f} mAP50-95 points (OpenVINO), "
        f"{r['onnxInt8LossMAP50_95Points']:.2f} (ONNX Runtime)"
    )
    print(f"per class (INT8): {json.dumps(r['int8']['perClass'])}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
