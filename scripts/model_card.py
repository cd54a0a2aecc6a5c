#!/usr/bin/env python3
"""Write PACKAGE/MODEL_CARD.md from model.json, eval-report.json and the recipe below.

python scripts/model_card.py models/shelf-detection-v2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RECIPES = {
    "shelf-detection-v2": {
        "domain": "shelves",
        "what": "Detects the 24 invented SKUs of the synthetic catalogue and their shelf-edge price tags "
        "(25 classes) on retail-shelf photos; the `shelf` pipeline turns the boxes into facings, rows, "
        "price tags and the shelf summary.",
        "imgsz": "640x384",
        "size_why": "Shelf photos are 16:9 (1280×720), so the input is a 16:9 letterbox (640×384, 2× "
        "downscale, 12 px of padding top and bottom) instead of a square that would waste 44 % of the "
        "pixels. Packs are 20–70 px wide at 1280 px (10–35 px at the input), tags about 20×10 px (10×5): "
        "stride-8 cells still see every pack. 640×384 costs 0.6 of a 640×640 input; a larger input "
        "(e.g. 960×544) would help the smallest tags and the mAP50-95 tail but costs 2.1× per image and "
        "did not fit the CPU training budget.",
        "train": [
            "--imgsz 640x384 --fliplr 0 --minutes 45 --threads 2 --reg-lo 0   # stopped after 5 min (step ~65)",
            "--imgsz 640x384 --fliplr 0 --minutes 42 --threads 2 --reg-lo 0 --resume runs/shelves/last.pt   # stopped after 6 min",
            "--imgsz 640x384 --fliplr 0 --minutes 40 --threads 1 --reg-lo 0 --resume runs/shelves2/last.pt",
            "--imgsz 640x384 --fliplr 0 --minutes 30 --threads 1 --reg-lo 0 --lr 5e-4 --init runs/shelves3-package   "
            "# 2.1.0: data/shelves-train = the first 700 images + 320 negatives (below); shelves3 exported "
            "first as package 2.0.0",
        ],
        "negatives": "2.1.0 adds 320 images without labels to the first 700 training images (31 %), written "
        "by `scripts/train/negatives.py --domain shelves` (seed 103): 173 augmented crops and collages of "
        "scikit-image's bundled photos (astronaut, cat, coffee, coins, rocket, text, page, …; flips, "
        "exposure ×0.5–×1.6, gamma, colour gains, blur, noise) and 147 procedural scenes (colour noise, "
        "gradients, text pages in eight Hershey fonts, shapes, stripes, blurred colour fields, scribbles). "
        "No Grocery Store photos (they would be products here). Photos shipped with scikit-learn, "
        "matplotlib and mahotas stay held out for evaluation. INT8 calibration for 2.1.0: 160 images of seed "
        "3000 and 40 negatives (`negatives.py --seed 3003`).",
        "prep": [
            "python scripts/train/negatives.py --out data/shelves-train --count 320 --seed 103 --domain shelves",
        ],
        "history": "Three segments, 51 min in all: two short 2-thread starts were stopped because, on the "
        "shared CPU, two intra-op threads ran 2–3× slower than one (threads waiting on each other while "
        "other jobs held the cores) and a denormal-float slowdown was fixed (`torch.set_flush_denormal`); "
        "the final 40-minute segment (1 thread) resumed from the last checkpoint (package 2.0.0). 2.1.0 "
        "(2026-12-02) fine-tuned 2.0.0 from its ONNX weights (`--init`, BatchNorm folded and frozen) for 30 "
        "minutes (146 steps: one thread on a CPU shared with two other fine-tunes and other engineers' "
        "jobs) on the same kind of images plus 31 % negatives, so that it stays silent on images "
        "without shelves: false detections per held-out photo 23.2 → 1.8 (highest confidence 0.87 → 0.59), "
        "per procedural negative 14.8 → 0.1, with the in-distribution figures within 0.4 mAP50-95 points. "
        "Its benchmark below ran while the shared CPU was heavily loaded; the graph is 2.0.0's (255 / 61 / 205 "
        "img/s INT8 / f32 / bf16 measured nearly idle).",
        "train_count": 900,
        "extra_limits": "- Price tags are the smallest objects (≈10×5 px at the input) and the weakest class; "
        "the shelf pipeline OCRs tags from the original image, so a looser tag box still reads.\n"
        "- Look-alike SKUs (same artwork in two sizes, Cola vs Zero, Still vs Sparkling) are told apart by "
        "size text, height and label colour; see the confusion table in eval-report.json.\n",
    },
    "building-inspection-v1": {
        "domain": "facades",
        "what": "Detects facade components (window, door, balcony, drainpipe, ac-unit, roof-edge, signage) "
        "on building-front photos; the `building` pipeline assigns storeys and counts components.",
        "imgsz": "640x384",
        "size_why": "Facade photos are 16:9; 640×384 keeps drainpipes (6–56 px wide at 1280 px) and roof "
        "edges (7–70 px tall) at least 3 px thick at the input. Thin, long boxes are where IoU is most "
        "sensitive, so a smaller input was not worth its speed.",
        "train": [
            "--limit 1000 --imgsz 640x384 --fliplr 0.5 --minutes 50 --threads 1 --reg-lo 0   # stopped after 30 min (step ~350)",
            "--limit 1000 --imgsz 640x384 --fliplr 0.5 --minutes 41 --threads 1 --reg-lo 0 --lr 1e-3 --resume runs/facades/last.pt",
            "--limit 1000 --imgsz 640x384 --fliplr 0.5 --minutes 16 --threads 1 --reg-lo 0 --lr 5e-4 --resume runs/facades2/model.pt",
            "--limit 1000 --imgsz 640x384 --fliplr 0.5 --minutes 70 --threads 1 --reg-lo 1 --lr 1e-3 --resume runs/facades3/model.pt",
            "--limit 1000 --imgsz 640x384 --fliplr 0.5 --minutes 72 --threads 1 --reg-lo 1 --lr 5e-4 --init runs/facades4-package   "
            "# facades4 exported first as package 1.1.0: export_model.py runs/facades4/model.pt ... --out runs/facades4-package",
            "--imgsz 640x384 --fliplr 0.5 --minutes 75 --threads 2 --reg-lo 1 --balance 0.5 --lr 5e-4 --init runs/facades5-package   "
            "# facades5 exported first as package 1.2.0: export_model.py runs/facades5/model.pt ... --out runs/facades5-package",
        ],
        "threads": 2,
        "export_args": " --ort-recipe careful",
        "history": "Six segments, about 300 min in all: the first run's 50-minute schedule was replaced after "
        "30 minutes by a longer 41-minute cosine from lr 1e-3, resumed from its checkpoint, when validation "
        "showed it would not converge in time; a 16-minute cosine from lr 5e-4 followed. A 70-minute "
        "segment widened the box bins to start one stride below zero (`--reg-lo 1`, see docs/training.md) "
        "so the thinnest drainpipes and roof edges can be regressed from their nearest grid cells (package "
        "1.1.0, held-out INT8 mAP50 0.853). Its `model.pt` was lost with a machine, so a fifth segment (1.2.0) "
        "started from the 1.1.0 package's ONNX weights (`--init`, BatchNorm folded and frozen) and trained 72 "
        "more minutes (4442 steps, sharing the CPU with the damage fine-tune): mAP50 0.853 → 0.891. These five "
        "segments saw the first 1000 training images (`--limit 1000`). The sixth (1.3.0) started from the "
        "1.2.0 package (`--init`) and trained 75 minutes on all 3000 images (indices 1000–2999 of the same "
        "seed are new), two threads with the CPU to itself, rare-class oversampling (`--balance 0.5`): "
        "validation mAP50 0.841 → 0.909, held-out INT8 mAP50 0.891 → 0.952, mAP50-95 0.639 → 0.701.",
        "train_count": 3000,  # segments 1-5 used the first 1000 (--limit 1000)
        "extra_limits": "- Meets the mAP50 ≥ 0.90 target since 1.3.0 (0.952 for the default OpenVINO INT8; 1.2.0 "
        "had 0.891, 1.1.0 0.853). Drainpipes stay the weakest class (AP50 0.76; 1.2.0: 0.45) and roof edges "
        "the next (0.92), both far below the others in AP50-95 (0.26 and 0.39): they are the thinnest boxes "
        "(drainpipes 3–7 px wide, roof edges 3–9 px tall at the 640×384 input), where a 1–2 px error on the "
        "thin side takes IoU under 0.5. What moved them was data and steps: three times the training images "
        "and 75 more minutes (validation was still rising when 1.2.0 stopped). A larger input (960×544: thin "
        "sides 1.5× thicker at 2.25× the compute) or a stride-4 head would move them further; a 960×544 "
        "fine-tune of 1.0 was tried and stopped (validation 0.70 after 27 minutes, below the 0.77 it started "
        "from).\n"
        "- The ONNX Runtime INT8 file (for hosts without OpenVINO) is quantized with `--ort-recipe careful` "
        "(convs only, percentile activation ranges, the heads' last convs in float): the default recipe "
        "(every op, min/max ranges) lost 13 mAP50-95 points here (0.883 / 0.575 against FP32 0.956 / 0.709; "
        "1.2.0 lost 5 the same way), `careful` 0.25. It costs speed: 8.9 ms per image on ONNX Runtime with "
        "2 threads against 7.6 ms for the default recipe's file (FP32 11.4 ms).\n",
    },
    "damage-assessment-v1": {
        "domain": "damage",
        "what": "Detects surface damage (crack, spalling, efflorescence, rust-stain, moisture-stain, "
        "exposed-rebar) on concrete/plaster close-ups; the `damage` pipeline grades severity and condition.",
        "imgsz": "640x384",
        "size_why": "Most damage instances are large (a crack's box spans its branches, stains and spalls "
        "are blobs), and the first 150 minutes of training ran at 512×288 (1.6× faster per step). Exposed "
        "rebar is not: a median 18×28 px at 512×288, some under 4 px on a side. The last segment moved to "
        "640×384 and lifted validation mAP50 from 0.87 to over 0.90 in 15 minutes; it costs 1.6× the "
        "inference time of 512×288 (still ≥ 150 img/s INT8 here).",
        "train": [
            "--imgsz 512x288 --fliplr 0.5 --minutes 40 --threads 1 --reg-lo 0   # stopped after 21 min (step ~500)",
            "--imgsz 512x288 --fliplr 0.5 --minutes 43 --threads 1 --reg-lo 0 --lr 1.2e-3 --resume runs/damage/last.pt",
            "--imgsz 512x288 --fliplr 0.5 --minutes 16 --threads 1 --reg-lo 0 --lr 6e-4 --resume runs/damage2/model.pt",
            "--imgsz 512x288 --fliplr 0.5 --minutes 70 --threads 1 --reg-lo 1 --balance 0.5 --lr 1e-3 --resume runs/damage3/model.pt",
            "--imgsz 640x384 --fliplr 0.5 --minutes 40 --threads 1 --reg-lo 1 --balance 0.5 --lr 7e-4 --resume runs/damage4/model.pt",
            "--imgsz 640x384 --fliplr 0.5 --minutes 70 --threads 2 --reg-lo 1 --balance 0.5 --lr 5e-4 --init runs/damage5-package   "
            "# damage5 exported first as package 1.2.0: export_model.py runs/damage5/model.pt ... --out runs/damage5-package",
        ],
        "threads": 2,
        "history": "Five segments, about 190 min in all: the first run's 40-minute schedule was replaced after "
        "21 minutes by a longer 43-minute cosine from lr 1.2e-3, resumed from its checkpoint; a 16-minute "
        "cosine from lr 6e-4 held validation mAP where it was. A 70-minute segment then oversampled "
        "images with rare classes (`--balance 0.5`: exposed rebar is 7 % of the boxes) and widened the box "
        "bins to start one stride below zero (`--reg-lo 1`); 40 minutes trained at 640×384 (package 1.2.0, "
        "held-out INT8 mAP50 0.891). Its `model.pt` was lost with a machine, so the sixth segment (1.3.0) "
        "started from the 1.2.0 package's ONNX weights (`--init`, BatchNorm folded and frozen) and trained 70 "
        "more minutes at 640×384 on two threads (6063 steps, the first run here with a CPU to itself for part "
        "of the time): held-out INT8 mAP50 0.891 → 0.930, mAP50-95 0.615 → 0.701.",
        "train_count": 1200,
        "export_args": " --act-range minmax --ort-recipe careful",
        "extra_limits": "- Meets the mAP50 ≥ 0.90 target since 1.3.0 (0.930 for the default OpenVINO INT8; "
        "1.2.0 had 0.891). Exposed rebar stays the weakest class (see the per-class table): small (median "
        "18×28 px at 512×288, some under 4 px on a side), rare (7 % of boxes) and always inside a spall; "
        "`--balance 0.5` oversampling and the 640×384 input are what lifted it. More rebar in the generator "
        "would move it further.\n"
        "- The ONNX Runtime INT8 file (for hosts without OpenVINO) is quantized with `--ort-recipe careful` "
        "since 2026-12-01: 0.2 mAP50-95 points lost against FP32 instead of 1.9 with the default recipe "
        "(mAP50 0.932 / mAP50-95 0.687 → 0.928 / 0.704), at 8.3 ms per image on ONNX Runtime with 2 "
        "threads against 7.4 ms.\n",
    },
}


def fmt(v, nd=3):
    return "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def render(pkg_dir: Path) -> str:
    manifest = json.loads((pkg_dir / "model.json").read_text())
    report = json.loads((pkg_dir / "eval-report.json").read_text())
    name = manifest["name"]
    r = RECIPES[name]
    s = report["summary"]
    acc = s["accuracy"]
    fps = s["throughputFps"]
    train = report.get("training", {})
    runs = report["runs"]
    int8 = runs["openvino-int8"]
    lines = [
        f"# {name} {manifest['version']} — model card",
        "",
        r["what"],
        "",
        "## Training data",
        "",
        f"**Synthetic images**: {r['train_count']} images from `scripts/generate.py {r['domain']}` "
        "(seed 1000), rendered by edgecv's own generator (invented brands, OpenCV drawing; see "
        "`docs/datasets.md`). No pretrained weights were used: the network was trained from random "
        "initialisation on a 2-core CPU"
        + (
            ", and no real photograph holds any of its objects."
            if r.get("negatives")
            else ". No real photographs were used."
        ),
        "",
        *(
            [f"**Negatives** (images without labels, none of the objects): {r['negatives']}", ""]
            if r.get("negatives")
            else []
        ),
        "## Model",
        "",
        f"EdgeDet-n (see `docs/training.md`): CSP backbone + PAN neck + decoupled DFL heads at strides "
        f"8/16/32, 1.28 M parameters, ReLU. Input {manifest['input']['width']}×{manifest['input']['height']} RGB, "
        "letterboxed (pad 114), /255. Output `[1, 4+nc, N]` (Ultralytics layout), no NMS in the graph. "
        f"Default weights: OpenVINO INT8 (NNCF PTQ, MIXED preset, 200 calibration images from seed 3000"
        + (
            ", activation ranges from absolute min/max"
            if "--act-range minmax" in r.get("export_args", "")
            else ""
        )
        + "). "
        f"Thresholds: confidence {manifest['thresholds']['confidence']}, NMS IoU {manifest['thresholds']['iou']}.",
        "",
        f"**Input size.** {r['size_why']}",
        "",
        f"Training: final segment {fmt(train.get('train_minutes'), 1)} min wall clock, {train.get('step', '—')} "
        f"steps of 16 images, on a 2-core CPU shared with other jobs (bf16 autocast, {r.get('threads', 1)} "
        f"thread{'s' if r.get('threads', 1) > 1 else ''}). {r['history']}",
        "",
        "## Evaluation",
        "",
        f"Held-out split: {s['data']['images']} images ({s['data']['instances']} objects) from seed "
        f"{s['data'].get('heldoutSeed')} (never used for training or calibration), COCO metrics via "
        "faster-coco-eval at conf 0.001, ≤300 detections per image, through `edgecv.runtime.Detector`.",
        "",
        "| weights | mAP50 | mAP50-95 | throughput (benchmark_app, img/s) |",
        "|---|---|---|---|",
        f"| OpenVINO INT8 (default) | {fmt(acc['openvino-int8']['mAP50'])} | {fmt(acc['openvino-int8']['mAP50_95'])} | {fmt(fps.get('openvino-int8'), 1)} |",
        f"| OpenVINO FP32, f32 execution | {fmt(acc['openvino-fp32-f32']['mAP50'])} | {fmt(acc['openvino-fp32-f32']['mAP50_95'])} | {fmt(fps.get('openvino-fp32-f32'), 1)} |",
        f"| OpenVINO FP32, CPU default (bf16 here) | {fmt(acc['openvino-fp32-default']['mAP50'])} | {fmt(acc['openvino-fp32-default']['mAP50_95'])} | {fmt(fps.get('openvino-fp32-default'), 1)} |",
        f"| ONNX Runtime INT8 (QDQ) | {fmt(acc['onnx-int8']['mAP50'])} | {fmt(acc['onnx-int8']['mAP50_95'])} | |",
        f"| ONNX Runtime FP32 | {fmt(acc['onnx-fp32']['mAP50'])} | {fmt(acc['onnx-fp32']['mAP50_95'])} | |",
        "",
        f"INT8 vs FP32 (f32): {fmt(s['int8LossMAP50_95Points'], 2)} mAP50-95 points lost; INT8 runs "
        f"{fmt(s['int8SpeedupVsF32'], 2)}× the f32 throughput. CPU: {s['cpu']} (2 cores, shared while measuring). "
        f"INT8 weights: {s['int8WeightBytes'] / 1e6:.1f} MB.",
        "",
        "Robustness of the default INT8 model (mAP50, relative drop vs clean):",
        "",
        "| variant | mAP50 | mAP50-95 | relative mAP50 drop | relative mAP50-95 drop | precision at conf |",
        "|---|---|---|---|---|---|",
    ]
    for k, v in int8.get("robustness", {}).items():
        drop95 = f"{100 * v['mAP50_95RelativeDrop']:.1f} %" if "mAP50_95RelativeDrop" in v else "–"
        lines.append(
            f"| {k} | {fmt(v['mAP50'])} | {fmt(v['mAP50_95'])} | {100 * v['mAP50RelativeDrop']:.1f} % "
            f"| {drop95} | {fmt(v['precision']) if 'precision' in v else '–'} |"
        )
    lines += heldout_lines(report.get("heldout"))
    lines += ["", "Per-class AP (OpenVINO INT8):", "", "| class | AP50 | AP50-95 |", "|---|---|---|"]
    for k, v in int8["per_class"].items():
        lines.append(f"| {k} | {fmt(v['AP50'])} | {fmt(v['AP50_95'])} |")
    conf = int8.get("confusion")
    if conf:
        lines += [
            "",
            f"Class confusion at confidence {conf['conf']} (IoU ≥ 0.5 matches): {conf['matched']} matched, "
            f"{conf['wrongClass']} with the wrong class ({100 * conf['wrongClassRate']:.2f} %), "
            f"{conf['missed']} missed, {conf['falsePositives']} unmatched detections. Most frequent:",
            "",
            "| truth | predicted | count |",
            "|---|---|---|",
        ]
        lines += [f"| {p['truth']} | {p['predicted']} | {p['count']} |" for p in conf["topConfusions"][:10]]
    lines += [
        "",
        "## Which precision to run",
        "",
        "The runtime default is OpenVINO INT8: on CPUs without bf16 units (Atom, Celeron, Core before "
        "Sapphire Rapids) it is the fastest path by the margin shown against f32 above, at the accuracy "
        "shown. On CPUs with bf16 units (AMX, or AVX-512 BF16 as on the EPYC host of the later measurements) "
        "OpenVINO runs FP32 models in bf16 by default; compare the FP32-default row with INT8 above before "
        "switching a bf16-capable device to `precision=fp32`. NPUs run the INT8 IR.",
        "",
        "## Limits",
        "",
        "- Trained and evaluated on synthetic renders only: expect a domain gap on real photos (real "
        "packaging, lighting, lens distortion, clutter). Fine-tune on labelled site photos "
        "(`docs/training.md`, *Train on your own photos*) before relying on it in production.",
        "- The class list is fixed to the generator's invented catalogue; real products need a custom model.",
        r["extra_limits"].rstrip(),
        "",
        "## Reproduce",
        "",
        "```",
        f"python scripts/generate.py {r['domain']} --out data/{r['domain']}-train --count {r['train_count']} --seed 1000 --workers 2",
        f"python scripts/generate.py {r['domain']} --out data/{r['domain']}-val --count 60 --seed 2000",
        f"python scripts/generate.py {r['domain']} --out data/{r['domain']}-calib --count 200 --seed 3000",
        f"python scripts/generate.py {r['domain']} --out data/{r['domain']}-heldout --count {s['data']['images']} --seed 5000",
        *r.get("prep", []),
        *[
            f"python scripts/train_model.py --data data/{r['domain']}-train --val data/{r['domain']}-val "
            f"--out runs/{r['domain']}{'' if i == 0 else i + 1} {args}"
            for i, args in enumerate(r["train"])
        ],
        f"python scripts/export_model.py runs/{r['domain']}{len(r['train']) if len(r['train']) > 1 else ''}/model.pt --calib data/{r['domain']}-calib "
        f"--name {name} --version {manifest['version']} --pipeline {manifest['pipeline']} "
        f"--conf {manifest['thresholds']['confidence']} --iou {manifest['thresholds']['iou']}{r.get('export_args', '')} "
        f"--out models/{name}",
        f"python scripts/evaluate_model.py models/{name} --data data/{r['domain']}-heldout --heldout-seed 5000"
        + (" --confusion" if conf else "")
        + f" --training runs/{r['domain']}{len(r['train']) if len(r['train']) > 1 else ''}/train-summary.json",
        f"python scripts/model_card.py models/{name}",
        "```",
        "",
        "Training is time-budgeted (`--minutes`) and runs on a shared CPU, so a rerun reaches a similar, "
        "not bit-identical, model.",
        "",
    ]
    return "\n".join(lines)


def heldout_lines(h: dict | None) -> list[str]:
    """The held-out section (negatives, second style) of a report that has one."""
    if not h:
        return []
    lines = ["", "Held-out sets built apart from the training generator (docs/training.md):", ""]
    for kind, v in h["negatives"]["byKind"].items():
        lines.append(
            f"- {kind} negatives ({v['images']} images): {v['falsePerImage']:.2f} false detections per image, "
            f"highest confidence {v['maxConfidence']:.2f}"
        )
    p = h.get("secondStyle", {}).get("groups", {}).get("product")
    if p:
        lines.append(
            f"- second shelf style ({h['secondStyle']['images']} images): product recall {p['recall']:.3f}, "
            f"extra boxes {100 * p['extraBoxes']:.1f} %, AP50 {fmt(p.get('AP50'))}, AP50-95 {fmt(p.get('AP50_95'))}"
        )
        job = h["secondStyle"].get("job")
        if job:
            jp = job["groups"]["product"]
            lines.append(
                f"- the same images the way a job sees them (scene check first): {job['refused']} of "
                f"{h['secondStyle']['images']} refused, product recall {jp['recall']:.3f}, extra boxes "
                f"{100 * jp['extraBoxes']:.1f} %"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for p in argv:
        pkg = Path(p)
        (pkg / "MODEL_CARD.md").write_text(render(pkg), encoding="utf-8")
        print(f"wrote {pkg / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
