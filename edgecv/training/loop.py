"""Time-budgeted training loop: AdamW, warmup + cosine by elapsed time, EMA, bf16 autocast, checkpoints.

The learning-rate schedule follows wall-clock time (``minutes``) rather than epochs, so a run on a
shared or slow CPU still finishes its schedule inside the budget it was given.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import Augment, DetectionDataset, YoloDataset
from .loss import DetectionLoss
from .model import STRIDES, EdgeDet, ExportWrapper, freeze_bn, from_onnx

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str
    out: str
    val: str | None = None
    width: int = 640
    height: int = 384
    size: str = "n"
    minutes: float = 30.0
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup: float = 0.03
    ema_decay: float = 0.999
    threads: int = 2
    bf16: bool = True
    seed: int = 0
    val_every_min: float = 10.0
    val_limit: int = 60
    limit: int = 0
    resume: str | None = None
    init: str | None = None  # model-fp32.onnx of a package (from_onnx): fine-tune it, BN frozen
    grow_like: range | None = None  # new classes start from the mean of these old classes (None: all)
    init_names: list[str] | None = None  # the init package's labels: classes not among them get a new head
    new_head_ok: bool = False  # a class count other than the init package's: new class head (else an error)
    continue_from: str | None = None  # a last.pt with train_state: go on where it stopped (same schedule)
    device: str = "auto"  # "auto": an NVIDIA GPU when torch sees one, "cpu": never
    reg_lo: int = 0
    balance: float = 0.0
    aug: Augment = field(default_factory=Augment)


class EMA:
    """Exponential moving average of weights, ramped in so early noisy weights fade quickly."""

    def __init__(self, model: torch.nn.Module, decay: float, tau: float = 300.0):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


@torch.no_grad()
def shift_bins(model: EdgeDet, k: int) -> None:
    """Re-index the box bins of weights trained with another ``reg_lo`` so that every distance the model
    predicted before is predicted again (bin j now means what bin j-k meant; the k new bins start near
    zero probability). Lets a trained model be fine-tuned with a wider bin range."""
    if k == 0:
        return
    if k < 0:
        raise ValueError("can only widen the bin range below zero (reg_lo must not shrink)")
    r = model.reg_max
    for seq in model.head.box:
        conv = seq[-1]
        w = conv.weight.view(4, r, *conv.weight.shape[1:])
        b = conv.bias.view(4, r)
        w[:, k:] = w[:, :-k].clone()
        w[:, :k] = 0
        b[:, k:] = b[:, :-k].clone()
        b[:, :k] = b.min() - 10.0


def image_weights(labels: list[np.ndarray], nc: int, power: float) -> list[float] | None:
    """Per-image sampling weight ``max over its classes of (mean class count / class count) ** power``
    (``power`` 0 = uniform). Rare classes (exposed rebar: 7 % of damage boxes) are seen more often."""
    if power <= 0:
        return None
    counts = np.bincount(np.concatenate([lab[:, 0].astype(int) for lab in labels]), minlength=nc) + 1.0
    rel = (counts.mean() / counts) ** power
    return [float(rel[lab[:, 0].astype(int)].max()) if len(lab) else 1.0 for lab in labels]


def param_groups(model: torch.nn.Module, wd: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 4 and name.endswith("weight") else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def save_checkpoint(path: Path, model: EdgeDet, cfg: TrainConfig, names: list[str], extra: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "state_dict": model.state_dict(),
            "nc": model.nc,
            "size": model.size,
            "reg_max": model.reg_max,
            "reg_lo": model.reg_lo,
            "frozen_bn": getattr(model, "frozen_bn", False),
            "names": names,
            "width": cfg.width,
            "height": cfg.height,
            "config": json.loads(json.dumps(asdict(cfg), default=str)),
            **extra,
        },
        tmp,
    )
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> tuple[EdgeDet, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = EdgeDet(ck["nc"], ck["size"], ck["reg_max"], ck.get("reg_lo", 0))
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


@torch.no_grad()
def predict(model: EdgeDet, x: torch.Tensor, width: int, height: int) -> np.ndarray:
    """Raw ``[B, 4+nc, N]`` predictions (same graph as the export)."""
    dev = next(model.parameters()).device
    wrapper = ExportWrapper(model, height, width).eval().to(dev)
    x = x.to(dev)
    outs = model(x)
    b = x.shape[0]
    cat = torch.cat([o.reshape(b, o.shape[1], -1) for o in outs], 2)
    n = cat.shape[-1]
    reg = 4 * model.reg_max
    d = cat[:, :reg].view(b, 4, model.reg_max, n).transpose(1, 2).softmax(1)
    d = (d * wrapper.decode.bins).sum(1) * wrapper.decode.strides
    cxy = wrapper.decode.anchors + (d[:, 2:] - d[:, :2]) * 0.5
    out = torch.cat((cxy, d[:, :2] + d[:, 2:], cat[:, reg:].sigmoid()), 1)
    return out.float().cpu().numpy()


def validate(model: EdgeDet, ds: DetectionDataset, limit: int = 0) -> dict:
    """COCO mAP of ``model`` on ``ds`` at the network resolution (letterboxed pixels)."""
    from edgecv.evaluation import coco_metrics
    from edgecv.runtime.decode import decode
    from edgecv.runtime.preprocess import LetterboxInfo

    ident = LetterboxInfo(1.0, 1.0, 0.0, 0.0)
    n = min(len(ds), limit) if limit else len(ds)
    truths, dets = [], []
    for i in range(0, n, 8):
        idx = list(range(i, min(n, i + 8)))
        x, _ = ds.batch(idx, Augment.none(), random.Random(0))
        raw = predict(model, x.contiguous(memory_format=torch.channels_last), ds.width, ds.height)
        for j, k in enumerate(idx):
            dets.append(
                decode(raw[j : j + 1], ident, (ds.height, ds.width), conf=0.001, iou=0.6, max_detections=300)
            )
            lab = ds.labels[k]
            truths.append((lab[:, 1:5], lab[:, 0].astype(int), ds.width, ds.height))
    return coco_metrics(truths, dets, ds.names)


@dataclass
class TrainOutcome:
    """What ``train`` left: ``model.pt`` (finished) or ``last.pt`` (stopped early, resumable)."""

    path: Path
    stopped: bool
    summary: dict


def device_for(cfg: TrainConfig) -> torch.device:
    """An NVIDIA GPU when torch sees one (and ``cfg.device`` allows it), else the CPU."""
    if cfg.device != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def initial_model(cfg: TrainConfig, names: list[str]) -> EdgeDet:
    """A new network, one seeded from an exported package (``init``: new classes get a new head), or the
    weights of a checkpoint (``resume``)."""
    model = EdgeDet(len(names), cfg.size, reg_lo=cfg.reg_lo)
    if cfg.init:
        src = from_onnx(cfg.init, cfg.size)
        src_names = cfg.init_names or (names if src.nc == len(names) else None)
        if src_names is None and cfg.grow_like is not None and src.nc < len(names):
            src_names = names[: src.nc]  # scripts/train_model.py --grow-like: the package's names come first
        if src.nc != len(names) or src_names != names:
            if not cfg.new_head_ok and src_names is None:
                raise ValueError(f"{cfg.init} has {src.nc} classes, the data {len(names)}")
            shift_bins(src, cfg.reg_lo - src.reg_lo)
            transplant(src, model, src_names or [], names)
            if cfg.grow_like is not None:  # new classes start as the mean of these old ones, not from zero
                grow_rows(
                    src,
                    model,
                    [names.index(n) for n in names if n not in set(src_names or [])],
                    cfg.grow_like,
                )
            model.frozen_bn = True
            log.info("new class head for %d classes (%s)", len(names), ", ".join(names))
        else:
            model = src
            shift_bins(model, cfg.reg_lo - model.reg_lo)
            model.reg_lo = cfg.reg_lo
    elif cfg.resume:
        ck = torch.load(cfg.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        shift_bins(model, cfg.reg_lo - ck.get("reg_lo", 0))
        model.frozen_bn = bool(ck.get("frozen_bn", False))
    return model


@torch.no_grad()
def transplant(src: EdgeDet, dst: EdgeDet, src_names: list[str], dst_names: list[str]) -> None:
    """Copy every weight whose shape matches from ``src`` into ``dst`` (backbone, neck, box heads). The
    class heads' last convs start fresh, except for the rows of classes whose name ``src`` already had."""
    dst_sd, src_sd = dst.state_dict(), src.state_dict()
    last = {f"head.cls.{i}.2.{w}" for i in range(len(STRIDES)) for w in ("weight", "bias")}
    for k, v in src_sd.items():
        if k not in last and k in dst_sd and dst_sd[k].shape == v.shape:
            dst_sd[k].copy_(v)
    old = {n: i for i, n in enumerate(src_names)}
    for level, (a, b) in enumerate(zip(src.head.cls, dst.head.cls, strict=True)):
        ca, cb = a[-1], b[-1]
        if ca.weight.shape[1] != cb.weight.shape[1]:
            continue
        for j, name in enumerate(dst_names):
            if name in old:
                cb.weight[j] = ca.weight[old[name]]
                cb.bias[j] = ca.bias[old[name]]
        log.debug(
            "class head %d: %d of %d classes kept", level, len(set(dst_names) & set(old)), len(dst_names)
        )


@torch.no_grad()
def grow_rows(src: EdgeDet, dst: EdgeDet, new: list[int], like: range) -> None:
    """The class-logit rows of ``dst``'s ``new`` classes start as the mean of ``src``'s ``like`` rows: a class
    that generalises old ones (``product`` after 24 products) starts out firing where they fire."""
    rows = list(like)
    for a, b in zip(src.head.cls, dst.head.cls, strict=True):
        ca, cb = a[-1], b[-1]
        if ca.weight.shape[1] != cb.weight.shape[1] or not new:
            continue
        cb.weight[new] = ca.weight[rows].mean(0, keepdim=True)
        cb.bias[new] = ca.bias[rows].mean()


def train(
    cfg: TrainConfig,
    ds: DetectionDataset | None = None,
    val_ds: DetectionDataset | None = None,
    progress: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
) -> TrainOutcome:
    """Train until the time budget is spent, or until ``stop`` is set (then ``last.pt`` holds everything
    ``cfg.continue_from`` needs to go on). ``progress`` gets a dict after every step."""
    torch.set_num_threads(cfg.threads)
    # denormal floats (tiny gradients, EMA and Adam moments late in training) slow x86 maths by 10x+
    torch.set_flush_denormal(True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for s in STRIDES:
        if cfg.width % s or cfg.height % s:
            raise ValueError(
                f"input size {cfg.width}x{cfg.height}: both sides must be multiples of {max(STRIDES)}"
            )

    t_load = time.time()
    if ds is None:
        ds = YoloDataset(Path(cfg.data), cfg.width, cfg.height, limit=cfg.limit)
    if val_ds is None and cfg.val:
        val_ds = YoloDataset(Path(cfg.val), cfg.width, cfg.height, names=ds.names, limit=cfg.val_limit)
    log.info("loaded data in %.0fs", time.time() - t_load)
    names = ds.names
    device = device_for(cfg)

    state = None
    if cfg.continue_from:
        ck = torch.load(cfg.continue_from, map_location="cpu", weights_only=False)
        state = ck["train_state"]
        model = EdgeDet(ck["nc"], ck["size"], ck["reg_max"], ck.get("reg_lo", 0))
        model.load_state_dict(state["model"])
        model.frozen_bn = bool(ck.get("frozen_bn", False))
    else:
        model = initial_model(cfg, names)
    model = model.to(device, memory_format=torch.channels_last).train()
    if getattr(model, "frozen_bn", False):
        freeze_bn(model)  # folded weights: batch statistics would undo the folding
        log.info("BatchNorm statistics frozen (weights from %s)", cfg.init or cfg.resume or cfg.continue_from)
    log.info(
        "EdgeDet-%s: %.2fM parameters, %d classes, input %dx%d, on %s",
        cfg.size,
        sum(p.numel() for p in model.parameters()) / 1e6,
        len(names),
        cfg.width,
        cfg.height,
        device,
    )
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    lossf = DetectionLoss(len(names), reg_lo=model.reg_lo)
    weights = image_weights(ds.labels, len(names), cfg.balance)
    rng = random.Random(cfg.seed)
    budget = cfg.minutes * 60
    step, epoch, spent = 0, 0, 0.0
    history: list[dict] = []
    if state is not None:
        ema.model.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        opt.load_state_dict(state["opt"])
        step, epoch, spent, history = state["step"], state["epoch"], state["elapsed"], state["history"]
        rng.seed(cfg.seed + step)
        log.info("continuing from step %d (%.1f of %.1f min spent)", step, spent / 60, cfg.minutes)
    # bf16 autocast (no loss scaling needed): AMX/AVX-512-BF16 CPUs, and GPUs that have it; else float32
    autocast = cfg.bf16 if device.type == "cpu" else torch.cuda.is_bf16_supported()
    amp_dtype = torch.bfloat16

    def elapsed() -> float:
        return spent + time.time() - start

    def checkpoint(path: Path) -> None:
        save_checkpoint(
            path,
            ema.model,
            cfg,
            names,
            {
                "step": step,
                "epoch": epoch,
                "train_state": {
                    "model": model.state_dict(),
                    "ema": ema.model.state_dict(),
                    "ema_updates": ema.updates,
                    "opt": opt.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    "elapsed": elapsed(),
                    "history": history,
                },
            },
        )

    start = time.time()
    last_ckpt = last_val = start
    running = np.zeros(3)
    val_now: dict | None = history[-1] if history else None
    done = stopped = False
    while not done:
        if weights is None:
            order = list(range(len(ds)))
            rng.shuffle(order)
        else:  # class-balanced epoch: images with rare classes drawn more often
            order = rng.choices(range(len(ds)), weights=weights, k=len(ds))
        batch = min(cfg.batch, len(order))
        for b in range(0, len(order) - batch + 1, batch):
            frac = elapsed() / budget
            if frac >= 1.0:
                done = True
                break
            if stop is not None and stop.is_set():
                done = stopped = True
                break
            lr = cfg.lr * (
                frac / cfg.warmup
                if frac < cfg.warmup
                else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (frac - cfg.warmup) / (1 - cfg.warmup)))
            )
            for g in opt.param_groups:
                g["lr"] = lr
            x, t = ds.batch(order[b : b + batch], cfg.aug, rng)
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=autocast):
                outs = model(x)
            loss, items = lossf([o.float() for o in outs], t.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            step += 1
            items = items.detach().cpu().numpy()
            running = 0.95 * running + 0.05 * items if step > 1 else items
            now = time.time()
            if step % 20 == 0:
                log.info(
                    "step %d epoch %d %.1f%% lr %.2e loss box %.3f cls %.3f dfl %.3f (%.2fs/step)",
                    step,
                    epoch,
                    100 * frac,
                    lr,
                    *running,
                    (now - start) / max(1, step - (state or {}).get("step", 0)),
                )
            if now - last_ckpt > 300:
                checkpoint(out / "last.pt")
                last_ckpt = now
            if val_ds is not None and now - last_val > cfg.val_every_min * 60:
                m = validate(ema.model, val_ds)
                val_now = {
                    "step": step,
                    "minutes": round(elapsed() / 60, 1),
                    "mAP50": m["mAP50"],
                    "mAP50_95": m["mAP50_95"],
                }
                history.append(val_now)
                log.info("val step %d: mAP50 %.4f mAP50-95 %.4f", step, m["mAP50"], m["mAP50_95"])
                last_val = time.time()
            if progress is not None:
                progress(
                    {"step": step, "elapsed": elapsed(), "budget": budget, "loss": float(running.sum()),
                     "val": val_now}
                )  # fmt: skip
        epoch += 1
    train_min = elapsed() / 60
    if stopped:
        checkpoint(out / "last.pt")
        log.info("stopped at step %d after %.1f min: %s", step, train_min, out / "last.pt")
        return TrainOutcome(out / "last.pt", True, {"step": step, "train_minutes": round(train_min, 1)})
    final = {"step": step, "epoch": epoch, "train_minutes": round(train_min, 1), "history": history}
    if val_ds is not None:
        m = validate(ema.model, val_ds)
        final["val"] = {"mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"], "images": len(val_ds)}
        log.info("final val: mAP50 %.4f mAP50-95 %.4f", m["mAP50"], m["mAP50_95"])
    save_checkpoint(out / "model.pt", ema.model, cfg, names, final)
    (out / "train-summary.json").write_text(json.dumps(final, indent=2) + "\n")
    log.info("done: %d steps, %d epochs, %.1f min -> %s", step, epoch, train_min, out / "model.pt")
    return TrainOutcome(out / "model.pt", False, final)
