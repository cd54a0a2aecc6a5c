#!/usr/bin/env python3
"""Throughput and latency of the agent against this machine's own ceiling, measured in one run.

    python scripts/bench.py --images 500 --model shelf-detection-v2
    python scripts/bench.py --only memory --images 6     # peak RSS and start-to-ready alone

Prints:
1. the ceiling: the model's raw throughput (OpenVINO benchmark_app, THROUGHPUT hint), decode-only
   throughput of the same JPEGs, and the combined bound 1 / (1/decode + 1/model);
2. the agent end to end (N files dropped into the inbox → all completed in SQLite) and its ratio to
   that bound (target ≥ 0.85), and its rate in steady state (once the files are in);
3. drop-to-completed latency on an idle agent, p50/p95, against benchmark_app's LATENCY-hint median
   (target: p50 ≤ inference + 30 ms);
4. INT8 vs FP32 throughput (and FP32 forced to f32), OpenVINO vs ONNX Runtime on the same package;
5. the agent's peak RSS with all shipped models loaded, and start-to-ready time cold and cached;
6. the CPU budget per image: each stage's CPU time on one thread (ingest, decode, preprocess, model,
   postprocess, the domain pipeline with recognition when ``--catalog`` is given, recording the result),
   summed and spread over the cores: the stage-sum bound, the most this much work allows; and the
   agent's end-to-end rate as a ratio of it (target >= 0.85);
7. the peer: Ultralytics ``predict`` (what a user would run instead) on the same OpenVINO INT8 model files
   and the same images, in its own virtual environment (``--peer-python``, default ``.peer-venv/bin/python``;
   skipped with a note when it is absent; set it up with ``scripts/setup_peer.sh``), and the agent's rate as
   a multiple of it (target >= 3.0).
Every figure line names the CPU's vector extensions at the top; ``--isa avx2`` caps oneDNN to reproduce an
AVX2-only box on an AVX-512 one. Nothing here is a pass/fail test: it prints figures for a person (and a
note) to read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from edgecv.config import load_config  # noqa: E402
from edgecv.errors import EdgecvError  # noqa: E402
from edgecv.runtime.detector import Detector  # noqa: E402
from edgecv.runtime.installed import find_package, installed_models  # noqa: E402
from edgecv.threads import cpu_flags_text as cpu_flags  # noqa: E402

BENCH_APP = Path(sys.executable).with_name("benchmark_app")


def log(msg: str) -> None:
    print(msg, flush=True)



# -- inputs ------------------------------------------------------------------------------------------


def make_images(n: int, kind: str, out: Path) -> list[Path]:
    """N generated 1280×720 JPEGs (seeds never used for training), cached between runs."""
    folder = out / f"{kind}-{n}"
    images = sorted((folder / "images").glob("*.jpg")) if folder.exists() else []
    if len(images) < n:
        subprocess.run(
            [
                sys.executable,
                str(REPO / "scripts" / "generate.py"),
                kind,
                "--out",
                str(folder),
                "--count",
                str(n),
                "--seed",
                "970000",
                "--workers",
                "2",
                "--quiet",
            ],
            check=True,
        )
        images = sorted((folder / "images").glob("*.jpg"))
    return images[:n]


# -- the ceiling -------------------------------------------------------------------------------------


def benchmark_app(model_xml: Path, hint: str, seconds: int, extra: list[str] | None = None) -> dict:
    """OpenVINO's own benchmark: throughput (FPS) and median latency (ms)."""
    cmd = [
        str(BENCH_APP),
        "-m",
        str(model_xml),
        "-d",
        "CPU",
        "-hint",
        hint,
        "-t",
        str(seconds),
        *(extra or []),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    fps = float(re.search(r"Throughput:\s+([\d.]+)\s+FPS", out).group(1))
    median = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", out)
    median_ms = float(median.group(1)) / (1000.0 if median.group(2) == "us" else 1.0)
    return {"fps": fps, "median_ms": median_ms}


def decode_throughput(paths: list[Path], threads: int) -> float:
    blobs = [p.read_bytes() for p in paths]

    def one(b: bytes):
        return cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR).shape

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, blobs[: min(20, len(blobs))]))  # warm-up
        start = time.perf_counter()
        list(pool.map(one, blobs))
    return len(blobs) / (time.perf_counter() - start)


def onnx_throughput(package, precision: str, images: list[np.ndarray]) -> float:
    det = Detector.open(package, backend="onnx", precision=precision)
    tensors = [det.preprocess(img)[0] for img in images[:50]]
    for t in tensors[:5]:
        det.infer(t)
    start = time.perf_counter()
    for t in tensors:
        det.infer(t)
    return len(tensors) / (time.perf_counter() - start)


# -- the agent as a user runs it ---------------------------------------------------------------------


AGENT_ENV: dict[str, str] = {}  # what every agent here gets besides its own (``--catalog``)


class AgentProcess:
    def __init__(self, data_dir: Path, inbox: Path, model: str, extra_env: dict | None = None) -> None:
        self.data_dir, self.inbox = data_dir, inbox
        env = {
            **os.environ,
            **AGENT_ENV,
            "EDGECV_DATA_DIR": str(data_dir),
            "EDGECV_DEFAULT_MODEL": model,
            "EDGECV_API_ENABLED": "false",
            "EDGECV_CONFIG": "",
            **(extra_env or {}),
        }
        self.log_path = data_dir.parent / f"agent-{data_dir.name}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgecv", "agent", "--inbox", str(inbox)],
            env=env,
            stdout=open(self.log_path, "wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "agent ready" in self.log_path.read_text(errors="replace"):
                return time.perf_counter() - self.started
            if self.proc.poll() is not None:
                raise SystemExit(f"agent exited: see {self.log_path}")
            time.sleep(0.01)
        raise SystemExit("agent not ready in time")

    def done(self) -> int:
        if getattr(self, "_conn", None) is None:
            self._conn = sqlite3.connect(self.data_dir / "edgecv.db", timeout=30)
        sql = "SELECT COUNT(*) FROM jobs WHERE status IN ('completed','failed')"
        return self._conn.execute(sql).fetchone()[0]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop(src: Path, inbox: Path, name: str) -> None:
    """Write-to-temp-then-rename, as a camera uploader does."""
    tmp = inbox / f".{name}.part"
    shutil.copyfile(src, tmp)
    os.rename(tmp, inbox / name)


class ThreadCPU:
    """CPU seconds (user + system) per thread-name group of a live process, from /proc.

    ``sample()`` reads every thread's counter and keeps the last value per thread id, so a thread that
    ends later (a decode pool, a finishing thread) still counts under its name; what threads did after
    their last sample, before ending, is reported as "threads that ended between samples". Names are
    grouped by stripping trailing digits and separators (``edgecv-decode_0`` → ``edgecv-decode``).
    """

    def __init__(self, pid: int) -> None:
        self.pid, self.tick = pid, os.sysconf("SC_CLK_TCK")
        self.seen: dict[str, tuple[str, float]] = {}
        self.sample()
        self.start_total, self.start = self.total, self.groups()

    def sample(self) -> None:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        self.total = (int(fields[11]) + int(fields[12])) / self.tick  # ended threads included
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:  # the thread ended
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            group = re.sub(r"[-_ ]*\d+$", "", name) or name
            self.seen[task.name] = (group, (int(fields[11]) + int(fields[12])) / self.tick)

    def groups(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for group, cpu in self.seen.values():
            out[group] += cpu
        return out

    def since_start(self) -> dict[str, float]:
        """CPU per group since construction (call ``sample()`` first)."""
        now = self.groups()
        out = {k: v - self.start.get(k, 0.0) for k, v in now.items()}
        seen_delta = sum(now.values()) - sum(self.start.values())
        out["threads that ended between samples"] = (self.total - self.start_total) - seen_delta
        return {k: v for k, v in out.items() if v > 0.005}


def end_to_end(work: Path, model: str, images: list[Path]) -> dict:
    inbox = work / "inbox-e2e"
    inbox.mkdir()
    agent = AgentProcess(work / "data-e2e", inbox, model)
    agent.wait_ready()
    cpu = ThreadCPU(agent.proc.pid)
    start = time.perf_counter()
    for i, src in enumerate(images):
        drop(src, inbox, f"{i:05d}.jpg")
    last_sample = 0.0
    while agent.done() < len(images):
        time.sleep(0.01)
        if time.perf_counter() - last_sample > 0.05:  # short-lived threads are seen before they end
            cpu.sample()
            last_sample = time.perf_counter()
    elapsed = time.perf_counter() - start
    cpu.sample()
    agent.stop()
    per_thread = cpu.since_start()
    return {
        "images_per_s": len(images) / elapsed,
        "steady_images_per_s": steady_rate(agent.data_dir / "edgecv.db"),
        "seconds": elapsed,
        "agent_cpu_s": sum(per_thread.values()),
        "cores_busy": sum(per_thread.values()) / elapsed,
        "cpu_ms_per_image": 1000 * sum(per_thread.values()) / len(images),
        "cpu_s_by_thread": dict(sorted(per_thread.items(), key=lambda kv: -kv[1])),
    }


def steady_rate(db: Path) -> float:
    """Completions per second between the 10th and the 90th percentile of the jobs' completion times: the
    rate once the backlog runs, without the burst of arrivals at the start (the intake's ingest shares
    the cores then) or the last few images."""
    with sqlite3.connect(db) as conn:
        done = sorted(
            datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp()
            for row in conn.execute("SELECT completed_at FROM jobs WHERE completed_at IS NOT NULL")
        )
    a, b = int(0.1 * len(done)), int(0.9 * len(done))
    return (b - a) / (done[b] - done[a]) if b > a and done[b] > done[a] else float("nan")


def latency(work: Path, model: str, images: list[Path], samples: int) -> dict:
    inbox = work / "inbox-lat"
    inbox.mkdir()
    agent = AgentProcess(work / "data-lat", inbox, model)
    agent.wait_ready()
    conn = sqlite3.connect(agent.data_dir / "edgecv.db", timeout=30)
    lat, inf = [], []
    for i in range(samples + 3):
        before = agent.done()
        dropped = time.time()
        drop(images[i % len(images)], inbox, f"lat-{i:04d}.jpg")
        while agent.done() == before:
            time.sleep(0.002)
        row = conn.execute(
            "SELECT completed_at, inference_ms FROM jobs ORDER BY completed_at DESC LIMIT 1"
        ).fetchone()
        done_at = datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp()
        if i >= 3:  # the first few warm caches
            lat.append((done_at - dropped) * 1000)
            inf.append(row[1])
        time.sleep(0.2)  # idle agent: one image at a time
    conn.close()
    agent.stop()
    lat.sort()
    return {
        "p50_ms": statistics.median(lat),
        "p95_ms": lat[int(0.95 * (len(lat) - 1))],
        "agent_inference_p50_ms": statistics.median(inf),
    }


def memory_and_startup(work: Path, images: list[Path]) -> dict:
    """All shipped models loaded (preloaded through folder mappings); start-to-ready cold and cached."""
    names = sorted(installed_models(load_config()))
    toml = work / "all-models.toml"
    toml.write_text("[folders]\n" + "".join(f'"m{i}" = "{n}"\n' for i, n in enumerate(names)))
    out = {}
    for run, label in enumerate(("cold", "cached")):
        inbox = work / f"inbox-mem-{label}"
        inbox.mkdir()
        # the agent as installed: local API on (a free loopback port), webhooks and sync off
        env = {"EDGECV_CONFIG": str(toml), "EDGECV_API_ENABLED": "true", "EDGECV_API_PORT": str(free_port())}
        agent = AgentProcess(work / "data-mem", inbox, names[0], env)
        out[f"ready_{label}_s"] = agent.wait_ready()
        for i, _name in enumerate(names):  # one image through each model
            (inbox / f"m{i}").mkdir(exist_ok=True)
            drop(images[run * len(names) + i], inbox / f"m{i}", f"x{i}.jpg")
        while agent.done() < len(names) * (run + 1):
            time.sleep(0.01)
        out[f"peak_rss_{label}_mb"] = agent.peak_rss_mb()
        agent.stop()
    out["models"] = names
    return out


def cpu_budget(
    package, images: list[Path], model_fps: float | None, cpus: int, n: int = 40, catalog: Path | None = None
) -> dict:
    """Median CPU time (ms, one thread) of each stage an image goes through in the agent."""
    from edgecv.imageio import decode_file
    from edgecv.ingest import ingest_file
    from edgecv.runtime.engines import Engines
    from edgecv.store import Store
    from edgecv.vision import PipelineInput, get_pipeline

    sample = images[: n + 3]
    detector = Detector.open(package, performance_hint="LATENCY", num_threads=1)
    pipeline = get_pipeline(package.pipeline)
    stages: dict[str, list[float]] = {}

    def timed(stage, fn, *a, **kw):
        t0 = time.thread_time()
        out = fn(*a, **kw)
        stages.setdefault(stage, []).append((time.thread_time() - t0) * 1000)
        return out

    with tempfile.TemporaryDirectory(prefix="edgecv-budget-") as tmp:
        overrides = {"data_dir": str(Path(tmp) / "data")}
        if catalog is not None:
            overrides["catalog"] = str(catalog)
        cfg = load_config(overrides=overrides)
        engines = Engines.from_config(cfg)  # the pipeline's readers, as the agent hands them in
        store = Store(cfg.db_path)
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        for i, src in enumerate(sample):  # the first three warm up and are dropped
            drop(src, inbox, f"{i:05d}.jpg")
            result = timed(
                "ingest (validate, hash, spool, observation + job)",
                ingest_file,
                store,
                cfg,
                inbox / f"{i:05d}.jpg",
                inbox,
            )
            job = store.claim_job("bench", 60, job_id=result.job.id)
            image = timed("decode", decode_file, cfg.data_dir / result.observation.spool_path)
            tensor, info = timed("preprocess (letterbox)", detector.preprocess, image)
            raw = timed("model, one LATENCY request, 1 thread", detector.infer, tensor)
            dets = timed("postprocess (decode + NMS)", detector.postprocess, raw, info, image.shape)
            res = timed(
                f"pipeline ({package.pipeline}{', with catalogue recognition' if catalog else ''})",
                pipeline,
                PipelineInput(
                    image,
                    dets,
                    list(package.labels),
                    result.observation.metadata,
                    package.pipeline_options,
                    engines=engines,
                ),
            )
            timed("record result (JSON + transaction)", store.complete_job, job.id, "bench", res)
        store.close()
    med = {k: float(statistics.median(v[3:])) for k, v in stages.items()}
    model_ms = 1000 * cpus / model_fps if model_fps else med["model, one LATENCY request, 1 thread"]
    decode_ms = med["decode"]
    total = sum(v for k, v in med.items() if not k.startswith("model")) + model_ms
    return {
        "stages_ms": med,
        "model_cpu_ms_at_ceiling": model_ms,
        "total_cpu_ms": total,
        "work_bound_fps": 1000 * cpus / total,
        "best_ratio": (decode_ms + model_ms) / total,
    }


def peer_ultralytics(python: Path, package, int8_xml: Path, images: list[Path], work: Path) -> dict:
    """Ultralytics ``predict`` on the same INT8 IR and images, in the peer venv (scripts/peer_ultralytics.py).
    Ultralytics reads a ``*_openvino_model`` folder with a ``metadata.yaml``; written here from model.json."""
    folder = work / f"{package.name.replace('-', '_')}_int8_openvino_model"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(int8_xml, folder / "model.xml")
    shutil.copy(int8_xml.with_suffix(".bin"), folder / "model.bin")
    spec = package.input
    names = "\n".join(f"  {i}: {json.dumps(n)}" for i, n in enumerate(package.labels))
    (folder / "metadata.yaml").write_text(
        f"description: {package.name} (edgecv package, INT8 IR)\nstride: 32\ntask: detect\nbatch: 1\n"
        f"imgsz:\n- {spec.height}\n- {spec.width}\nnames:\n{names}\n"
    )
    t = package.thresholds
    cmd = [str(python), str(REPO / "scripts" / "peer_ultralytics.py"), "--model", str(folder)]
    cmd += ["--conf", str(t.confidence), "--iou", str(t.iou), *map(str, images)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECV_", "ONEDNN_"))}
    if "ONEDNN_MAX_CPU_ISA" in os.environ:  # the same ISA cap as the agent's
        env["ONEDNN_MAX_CPU_ISA"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"peer failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- main --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--model", default="shelf-detection-v2")
    ap.add_argument("--kind", default=None, help="generator for the images (default: from the model)")
    ap.add_argument("--seconds", type=int, default=15, help="benchmark_app duration per run")
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edgecv-bench-images")
    parts = ["ceiling", "e2e", "latency", "compare", "memory", "budget", "peer"]
    ap.add_argument("--skip", nargs="*", default=[], choices=parts)
    ap.add_argument(
        "--only",
        nargs="+",
        choices=parts,
        help="run only these parts (e.g. `--only memory --images 6`); the others are skipped",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--catalog",
        type=Path,
        help="a product catalogue for the agents and the CPU budget (e.g. edgecv/catalog/demo, as the demo "
        "runs): shelf products are then named by recognition, and its time is counted",
    )
    ap.add_argument(
        "--peer-python",
        type=Path,
        default=Path(os.environ.get("EDGECV_PEER_PYTHON", REPO / ".peer-venv" / "bin" / "python")),
        help="python of a venv with Ultralytics (scripts/setup_peer.sh) for the peer part",
    )
    ap.add_argument(
        "--isa",
        choices=["native", "avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni"],
        default="native",
        help="cap oneDNN (OpenVINO's CPU kernels) at this instruction set: on an AVX-512 machine, "
        "`--isa avx2` reproduces an AVX2-only box's model figures (docs/performance.md)",
    )
    args = ap.parse_args()
    if args.only:
        args.skip = [p for p in parts if p not in args.only]
    if args.isa != "native":  # read by oneDNN when it first dispatches; the agent subprocesses inherit it
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.isa.upper()

    if args.catalog is not None:
        args.catalog = args.catalog.resolve()
        AGENT_ENV["EDGECV_CATALOG"] = str(args.catalog)
    cfg = load_config()
    package = find_package(cfg, args.model)
    kind = args.kind or {"shelf": "shelves", "building": "facades", "damage": "damage"}.get(
        package.pipeline, "shelves"
    )
    images = make_images(args.images, kind, args.cache)
    figures: dict = {
        "model": args.model,
        "images": len(images),
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_flags": cpu_flags(),
        "isa_cap": args.isa,
        "catalog": str(args.catalog) if args.catalog else None,
    }
    log(
        f"# edgecv bench: {args.model}, {len(images)} × {kind} JPEGs, {figures['cpus']} CPUs; "
        f"CPU flags: {figures['cpu_flags']}; oneDNN ISA cap: {args.isa}"
    )

    try:
        int8_xml = package.model_path(package.weight_set("openvino", "int8"))
    except EdgecvError:  # a package without INT8 IR (e.g. a custom model): its default OpenVINO weights
        int8_xml = package.model_path(package.weight_set("openvino"))
    if "ceiling" not in args.skip:
        tp = benchmark_app(int8_xml, "throughput", args.seconds)
        lt = benchmark_app(int8_xml, "latency", args.seconds)
        dec = decode_throughput(images, threads=figures["cpus"])
        bound = 1 / (1 / dec + 1 / tp["fps"])
        figures["ceiling"] = {
            "model_fps": tp["fps"],
            "latency_median_ms": lt["median_ms"],
            "decode_fps": dec,
            "bound_fps": bound,
        }
        log(
            f"ceiling: model {tp['fps']:.1f} img/s (benchmark_app, throughput), decode {dec:.1f} img/s, "
            f"combined bound {bound:.1f} img/s; latency-hint median {lt['median_ms']:.2f} ms"
        )
    with tempfile.TemporaryDirectory(prefix="edgecv-bench-") as tmp:
        work = Path(tmp)
        if "e2e" not in args.skip:
            e2e = end_to_end(work, args.model, images)
            figures["end_to_end"] = e2e
            ratio = (
                e2e["images_per_s"] / figures["ceiling"]["bound_fps"]
                if "ceiling" in figures
                else float("nan")
            )
            figures["end_to_end"]["ratio_to_bound"] = ratio
            log(
                f"agent end to end: {e2e['images_per_s']:.1f} img/s ({len(images)} in {e2e['seconds']:.1f} s), "
                f"ratio to bound {ratio:.2f} (target ≥ 0.85); steady state (10th-90th percentile of "
                f"completions) {e2e['steady_images_per_s']:.1f} img/s"
            )
            log(
                f"  agent CPU {e2e['agent_cpu_s']:.1f} s = {e2e['cpu_ms_per_image']:.1f} ms per image, "
                f"{e2e['cores_busy']:.2f} of {figures['cpus']} cores busy; by thread: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in e2e["cpu_s_by_thread"].items())
            )
        if "latency" not in args.skip:
            lat = latency(work, args.model, images, args.latency_samples)
            figures["latency"] = lat
            ref = figures.get("ceiling", {}).get("latency_median_ms")
            extra = (
                f"; inference (latency hint) {ref:.2f} ms → p50 - inference = {lat['p50_ms'] - ref:.1f} ms (target ≤ 30)"
                if ref
                else ""
            )
            log(
                f"idle latency drop→completed: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, "
                f"agent-measured inference p50 {lat['agent_inference_p50_ms']:.1f} ms{extra}"
            )
        if "compare" not in args.skip:
            fp32_xml = package.model_path(package.weight_set("openvino", "fp32"))
            f32 = benchmark_app(fp32_xml, "throughput", args.seconds, ["-infer_precision", "f32"])
            # under an ISA cap without bf16 the default precision is f32 (edgecv forces it; benchmark_app
            # would pick bf16 from the CPU's flags and fail)
            bf16 = (
                benchmark_app(fp32_xml, "throughput", args.seconds)
                if args.isa == "native"
                else {"fps": float("nan")}
            )
            int8 = (
                figures.get("ceiling", {}).get("model_fps")
                or benchmark_app(int8_xml, "throughput", args.seconds)["fps"]
            )
            sample = [cv2.imread(str(p)) for p in images[:50]]
            ort_int8 = onnx_throughput(package, "int8", sample)
            ort_fp32 = onnx_throughput(package, "fp32", sample)
            figures["compare"] = {
                "openvino_int8_fps": int8,
                "openvino_fp32_f32_fps": f32["fps"],
                "openvino_fp32_default_fps": bf16["fps"],
                "onnxruntime_int8_fps": ort_int8,
                "onnxruntime_fp32_fps": ort_fp32,
            }
            log(
                f"INT8 {int8:.1f} img/s vs FP32 forced f32 {f32['fps']:.1f} ({int8 / f32['fps']:.2f}×) "
                f"vs FP32 default precision (bf16 here) {bf16['fps']:.1f}; "
                f"ONNX Runtime (sequential, intra-op threads) INT8 {ort_int8:.1f}, FP32 {ort_fp32:.1f} img/s"
            )
        if "memory" not in args.skip:
            mem = memory_and_startup(work, images)
            figures["memory"] = mem
            log(
                f"all models ({', '.join(mem['models'])}), local API on: peak RSS {mem['peak_rss_cold_mb']:.0f} MB cold, "
                f"{mem['peak_rss_cached_mb']:.0f} MB cached (target ≤ 300); start-to-ready "
                f"{mem['ready_cold_s']:.2f} s cold, {mem['ready_cached_s']:.2f} s with the compiled-model cache"
            )
    if "budget" not in args.skip:
        model_fps = figures.get("ceiling", {}).get("model_fps")
        b = cpu_budget(package, images, model_fps, figures["cpus"], catalog=args.catalog)
        figures["budget"] = b
        log("CPU per image (median, one thread):")
        for stage, ms in b["stages_ms"].items():
            log(f"  {stage:52s} {ms:6.2f} ms")
        if model_fps:
            log(
                f"  {'model at the ceiling (cores / benchmark_app img/s)':52s} {b['model_cpu_ms_at_ceiling']:6.2f} ms"
            )
        log(
            f"  total {b['total_cpu_ms']:.1f} ms → at most {b['work_bound_fps']:.1f} img/s on {figures['cpus']} cores "
            f"= {b['best_ratio']:.2f} of the decode+model bound, if nothing else ran and every core stayed busy"
        )
        if "end_to_end" in figures:
            agent = figures["end_to_end"]
            b["agent_ratio"] = agent["images_per_s"] / b["work_bound_fps"]
            b["agent_steady_ratio"] = agent["steady_images_per_s"] / b["work_bound_fps"]
            log(
                f"agent vs the stage-sum bound ({b['work_bound_fps']:.1f} img/s): {b['agent_ratio']:.2f} end to end, "
                f"{b['agent_steady_ratio']:.2f} in steady state (target ≥ 0.85)"
            )
    if "peer" not in args.skip:
        if not args.peer_python.exists():
            figures["peer"] = {"skipped": f"no peer venv at {args.peer_python}"}
            log(f"peer: skipped, no Ultralytics venv at {args.peer_python} (scripts/setup_peer.sh makes one)")
        else:
            with tempfile.TemporaryDirectory(prefix="edgecv-peer-") as tmp:
                peer = peer_ultralytics(args.peer_python, package, int8_xml, images, Path(tmp))
            figures["peer"] = peer
            line = (
                f"peer: Ultralytics {peer['ultralytics']} predict, same INT8 IR and {peer['images']} images: "
                f"{peer['images_per_s']:.1f} img/s ({peer['boxes_per_image']:.1f} boxes per image)"
            )
            if "end_to_end" in figures:
                agent = figures["end_to_end"]
                peer["agent_ratio"] = agent["images_per_s"] / peer["images_per_s"]
                peer["agent_steady_ratio"] = agent["steady_images_per_s"] / peer["images_per_s"]
                line += (
                    f"; the agent {peer['agent_ratio']:.2f}× that end to end, {peer['agent_steady_ratio']:.2f}× in "
                    "steady state (target ≥ 3.0), while also running the pipeline and recording every result"
                )
            log(line)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
