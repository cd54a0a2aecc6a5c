#!/usr/bin/env python3
"""Evaluate a model package the way it ships and write its eval report (and figures into model.json).

    python scripts/evaluate_model.py models/shelf-detection-v2 --data HELDOUT [--limit 200] [--confusion]
    python scripts/evaluate_model.py models/* --quick --out runs/heldout/report.json [--pictures DIR]

Runs, all through edgecv.runtime.Detector on CPU:
  * COCO mAP50 / mAP50-95 / per-class AP (faster-coco-eval, conf 0.001, up to 300 detections per image) for
    OpenVINO INT8, OpenVINO FP32 executed in f32 and in the CPU's default precision (bf16 on AMX CPUs),
    ONNX Runtime INT8 and FP32;
  * robustness of the default (OpenVINO INT8) model: the perturbations of edgecv.evaluation.VARIANTS
    (blur, exposure, JPEG, rotation, keystone, border wedges, noise, motion blur, downscale): relative
    mAP50 / mAP50-95 drop and precision at the package threshold;
  * held-out sets built apart from the training generator (scripts/heldout/): false detections per image
    on photo and procedural negatives, and for shelf models the second drawing style (class-agnostic
    product recall, extra boxes, mAP);
  * class confusion at the package's confidence threshold (--confusion, for shelves: SKU look-alikes);
  * throughput with OpenVINO benchmark_app (-hint throughput -t 15): INT8, FP32 -infer_precision f32, FP32
    default; interleaved rounds (--bench-rounds), best round kept, all rounds reported.
Without --data the in-distribution images are generated (scripts/generate.py, --heldout-seed, default 5000).
Writes PACKAGE/eval-report.json and copies the headline figures into model.json's ``evaluation``.
--quick (24 in-distribution images, OpenVINO INT8 only, no benchmark, fewer held-out images) leaves the
package alone and writes only --out; several packages may be given, and a table of all is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # generate, heldout

from edgecv.evaluation import (  # noqa: E402
    VARIANTS,
    benchmark,
    evaluate_grouped,
    evaluate_package,
    false_detections,
)
from edgecv.runtime.package import load_package, read_manifest, write_manifest  # noqa: E402
from edgecv.threads import cpu_flags  # noqa: E402

log = logging.getLogger("evaluate")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


DOMAINS = {"shelf": "shelves", "building": "facades", "damage": "damage"}  # pipeline -> generator domain


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", nargs="+")
    ap.add_argument("--data", help="held-out YOLO or COCO folder (default: generated at --heldout-seed)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument(
        "--count", type=int, help="images to generate when --data is not given (default 200, --quick 24)"
    )
    ap.add_argument("--confusion", action="store_true")
    ap.add_argument("--bench-seconds", type=int, default=15)
    ap.add_argument("--bench-rounds", type=int, default=2)
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--no-robustness", action="store_true")
    ap.add_argument("--no-heldout", action="store_true", help="skip the negatives and the second style")
    ap.add_argument("--quick", action="store_true", help="a few minutes for all packages; writes --out only")
    ap.add_argument("--out", type=Path, help="also write the report(s) here (JSON)")
    ap.add_argument("--pictures", type=Path, help="write annotated PNGs of held-out failures here")
    ap.add_argument("--heldout-seed", type=int, default=5000, help="seed of the in-distribution images")
    ap.add_argument("--training", help="train-summary.json to copy into the report")
    a = ap.parse_args(argv)
    if a.quick:
        a.no_bench = True
        a.count = a.count or 24
        a.limit = a.limit or a.count
    a.count = a.count or 200
    if len(a.package) > 1 and a.data:
        ap.error("--data goes with one package; without it each package's domain is generated")
    if (len(a.package) > 1 or a.quick) and not a.out:
        ap.error("--quick and several packages write only --out: give --out FILE")
    return a


def in_distribution(a: argparse.Namespace, pkg, tmp: Path) -> Path:
    """--data, or ``--count`` images of the package's domain generated at ``--heldout-seed``."""
    if a.data:
        return Path(a.data)
    from generate import generate

    out = tmp / f"{pkg.name}-seed{a.heldout_seed}"
    generate(DOMAINS[pkg.pipeline], out, a.count, a.heldout_seed)
    return out


def heldout(pkg, tmp: Path, quick: bool, pictures: Path | None) -> dict:
    """False detections on negatives (photo / procedural) and, for shelf models, the second style."""
    from heldout import negatives, shelves_plain

    negs = negatives.photo_negatives() + negatives.procedural_negatives(3 if quick else 5)
    out = {"negatives": false_detections(pkg, negs, keep=3)}
    if pkg.domain is not None:  # the way a job sees them: the scene check first (edgecv.runtime.scene)
        from edgecv.runtime.scene import SceneCheck

        out["negativesJob"] = false_detections(pkg, negs, scene=SceneCheck())
    if pkg.pipeline == "shelf":
        plain = shelves_plain.write_set(tmp / "shelves-plain", 20 if quick else 60, seed=7000)
        groups = {"product": [n for n in pkg.labels if n != "price-tag"], "price-tag": ["price-tag"]}
        scene = None
        if pkg.domain is not None:
            from edgecv.runtime.scene import SceneCheck

            scene = SceneCheck()
        out["secondStyle"] = {
            "set": "scripts/heldout/shelves_plain.py seed 7000",
            **evaluate_grouped(pkg, plain, groups, scene=scene),
        }
    if pictures:
        draw_failures(pkg, negs, out, tmp, pictures)
    return out


def draw_failures(pkg, negs, report: dict, tmp: Path, folder: Path) -> None:
    """PNGs of the detections on the worst negatives and on the first second-style images (truth green)."""
    import cv2

    from edgecv.evaluation import load_yolo_split
    from edgecv.runtime.detector import Detector

    folder.mkdir(parents=True, exist_ok=True)
    det = Detector.open(pkg, backend="openvino", precision="int8")
    worst = {w["image"] for w in report["negatives"]["worst"]}
    shots = [(n, img, np.zeros((0, 4))) for n, _, img in negs if n in worst]
    if "secondStyle" in report:
        for path, boxes, _ in load_yolo_split(tmp / "shelves-plain", limit=2):
            shots.append((path.stem, cv2.imread(str(path)), boxes))
    for name, img, truth in shots:
        d = det.detect(img)
        canvas = img.copy()
        for b in truth:
            cv2.rectangle(canvas, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 200, 0), 1)
        for b, c, k in zip(d.xyxy, d.confidence, d.class_id, strict=True):
            cv2.rectangle(canvas, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 0, 255), 2)
            cv2.putText(
                canvas,
                f"{pkg.labels[k][:14]} {c:.2f}",
                (int(b[0]), max(10, int(b[1]) - 3)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (0, 0, 255),
                1,
                cv2.LINE_AA,
            )
        cv2.imwrite(str(folder / f"{pkg.name}_{name}.png"), canvas)


def evaluate_one(a: argparse.Namespace, pkg_dir: Path, tmp: Path) -> dict:
    pkg = load_package(pkg_dir)
    data = in_distribution(a, pkg, tmp)
    runs = {}
    configs = (
        ("openvino-int8", "openvino", "int8", None),
        ("openvino-fp32-f32", "openvino", "fp32", "f32"),
        ("openvino-fp32-default", "openvino", "fp32", None),
        ("onnx-int8", "onnx", "int8", None),
        ("onnx-fp32", "onnx", "fp32", None),
    )
    for key, backend, precision, infer in configs[:1] if a.quick else configs:
        variants = list(VARIANTS) if key == "openvino-int8" and not a.no_robustness else []
        r = evaluate_package(
            pkg,
            data,
            backend=backend,
            precision=precision,
            limit=a.limit,
            inference_precision=infer,
            variants=variants,
            confusion=a.confusion and key == "openvino-int8",
        )
        runs[key] = r
        log.info(
            "%s %s: mAP50 %.4f mAP50-95 %.4f (%ss)", pkg.name, key, r["mAP50"], r["mAP50_95"], r["seconds"]
        )

    speed = {}
    if not a.no_bench:
        speed = bench(a, pkg_dir)
    default = runs["openvino-int8"]
    headline = {
        "data": {
            "heldoutSeed": None if a.data else a.heldout_seed,
            "images": default["images"],
            "instances": default["instances"],
        },
        "default": {
            "backend": "openvino",
            "precision": "int8",
            "mAP50": default["mAP50"],
            "mAP50_95": default["mAP50_95"],
        },
        "accuracy": {k: {"mAP50": v["mAP50"], "mAP50_95": v["mAP50_95"]} for k, v in runs.items()},
        "robustnessMAP50RelativeDrop": {
            k: v["mAP50RelativeDrop"] for k, v in default.get("robustness", {}).items()
        },
        "robustnessMAP50_95RelativeDrop": {
            k: v["mAP50_95RelativeDrop"] for k, v in default.get("robustness", {}).items()
        },
        "cpu": cpu_name(),
        "cpuFlags": cpu_flags(),
    }
    if "openvino-fp32-f32" in runs:
        headline["int8LossMAP50_95Points"] = round(
            100 * (runs["openvino-fp32-f32"]["mAP50_95"] - default["mAP50_95"]), 2
        )
    headline["throughputFps"] = {k: v.get("throughputFps") for k, v in speed.items()}
    headline["int8SpeedupVsF32"] = (
        round(speed["openvino-int8"]["throughputFps"] / speed["openvino-fp32-f32"]["throughputFps"], 2)
        if speed
        else None
    )
    headline["int8WeightBytes"] = sum(
        (pkg_dir / f).stat().st_size for w in pkg.weights if w.precision == "int8" for f in w.files
    )
    report = {"model": pkg.name, "version": pkg.version, "summary": headline, "runs": runs, "speed": speed}
    if not a.no_heldout:
        report["heldout"] = heldout(pkg, tmp, a.quick, a.pictures)
        headline["heldout"] = heldout_headline(report["heldout"])
    if a.training and Path(a.training).is_file():
        report["training"] = json.loads(Path(a.training).read_text())
    if not a.quick:
        (pkg_dir / "eval-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        manifest, _ = read_manifest(pkg_dir)
        manifest["evaluation"] = {**headline, "report": "eval-report.json"}
        write_manifest(pkg_dir, manifest)
    return report


def heldout_headline(h: dict) -> dict:
    neg = h["negatives"]
    out = {
        "negatives": {
            k: {
                "falsePerImage": v["falsePerImage"],
                "maxConfidence": v["maxConfidence"],
                "images": v["images"],
            }
            for k, v in neg["byKind"].items()
        }
    }
    if "negativesJob" in h:
        out["negativesJob"] = {
            k: {"falsePerImage": v["falsePerImage"], "refused": v["refused"], "images": v["images"]}
            for k, v in h["negativesJob"]["byKind"].items()
        }
    if "secondStyle" in h:
        p = h["secondStyle"]["groups"]["product"]
        out["secondStyleProducts"] = {
            "recall": p["recall"],
            "extraBoxes": p["extraBoxes"],
            "AP50": p.get("AP50"),
            "AP50_95": p.get("AP50_95"),
        }
        job = h["secondStyle"].get("job")
        if job:
            out["secondStyleProducts"]["job"] = {
                "refused": job["refused"],
                "images": h["secondStyle"]["images"],
                "recall": job["groups"]["product"]["recall"],
                "extraBoxes": job["groups"]["product"]["extraBoxes"],
            }
    return out


def bench(a: argparse.Namespace, pkg_dir: Path) -> dict:
    # the machine is shared: run the three configurations interleaved, several rounds, and keep the
    # best round of each (the least disturbed); every round is in the report
    int8_xml = pkg_dir / "openvino-int8" / "model.xml"
    fp32_xml = pkg_dir / "openvino-fp32" / "model.xml"
    configs = {
        "openvino-int8": (int8_xml, None),
        "openvino-fp32-f32": (fp32_xml, "f32"),
        "openvino-fp32-default": (fp32_xml, None),
    }
    rounds: dict[str, list[dict]] = {k: [] for k in configs}
    for _ in range(a.bench_rounds):
        for k, (xml, prec) in configs.items():
            rounds[k].append(benchmark(xml, infer_precision=prec, seconds=a.bench_seconds))
    speed = {}
    for k, rs in rounds.items():
        best = max(rs, key=lambda r: r.get("throughputFps", 0.0))
        speed[k] = {**best, "rounds": [r.get("throughputFps") for r in rs]}
        log.info("%s: %.1f img/s (rounds %s)", k, best.get("throughputFps", float("nan")), speed[k]["rounds"])
    return speed


def table(reports: list[dict]) -> str:
    """The held-out figures of every report as readable text tables."""
    lines = [
        f"{'model':<24} {'negatives photo FP/img (max conf)':>34} {'procedural FP/img (max conf)':>30} "
        f"{'2nd style recall / extra / AP50 / AP50-95':>42} {'job path photo / procedural FP/img (refused)':>46}"
    ]
    for r in reports:
        h = r.get("heldout", {})
        kinds = h.get("negatives", {}).get("byKind", {})
        cells = [
            f"{kinds[k]['falsePerImage']:.2f} ({kinds[k]['maxConfidence']:.2f})" if k in kinds else "-"
            for k in ("photo", "procedural")
        ]
        p = h.get("secondStyle", {}).get("groups", {}).get("product")
        second = (
            f"{p['recall']:.3f} / {100 * p['extraBoxes']:.1f}% / {p.get('AP50', 0):.3f} / {p.get('AP50_95', 0):.3f}"
            if p
            else "-"
        )
        sjob = h.get("secondStyle", {}).get("job")
        if sjob:
            second += f" (job: {sjob['groups']['product']['recall']:.3f}, {sjob['refused']} refused)"
        job = h.get("negativesJob", {}).get("byKind", {})
        job_cell = " / ".join(
            f"{job[k]['falsePerImage']:.2f} ({job[k]['refused']}/{job[k]['images']})" if k in job else "-"
            for k in ("photo", "procedural")
        )
        lines.append(f"{r['model']:<24} {cells[0]:>34} {cells[1]:>30} {second:>42} {job_cell:>46}")
    rob = [r["runs"]["openvino-int8"].get("robustness", {}) for r in reports]
    if any(rob):
        lines += ["", "perturbation: relative mAP50-95 drop, precision at the package threshold"]
        lines.append(f"{'':<16}" + "".join(f"{r['model'][:26]:>28}" for r in reports))
        base = [r["runs"]["openvino-int8"] for r in reports]
        lines.append(
            f"{'(none)':<16}"
            + "".join(
                f"{'mAP50-95 ' + format(b['mAP50_95'], '.3f'):>19} P {b['atThreshold']['precision']:.3f}"
                for b in base
            )
        )
        for v in VARIANTS:
            if all(v in x for x in rob):
                lines.append(
                    f"{v:<16}"
                    + "".join(
                        f"{100 * x[v]['mAP50_95RelativeDrop']:>18.1f}% P {x[v]['precision']:.3f}" for x in rob
                    )
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="edgecv-eval-") as tmp:
        reports = []
        for p in a.package:
            sub = Path(tmp) / Path(p).name
            sub.mkdir()
            reports.append(evaluate_one(a, Path(p), sub))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        body = reports[0] if len(reports) == 1 else {r["model"]: r for r in reports}
        a.out.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    if len(reports) == 1 and not a.quick:
        print(json.dumps(reports[0]["summary"], indent=2))
    print(table(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
