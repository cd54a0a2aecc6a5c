"""EdgeDet: a compact anchor-free detector (CSP backbone, PAN neck, decoupled DFL heads at 8/16/32).

The exported graph (``ExportWrapper``) has one static input ``[1, 3, H, W]`` (RGB, 0..1) and one output
``[1, 4 + nc, N]``: rows ``cx, cy, w, h`` in input pixels, then per-class sigmoid scores, no NMS —
the Ultralytics layout the edgecv runtime decodes. ReLU everywhere: fast on CPUs/NPUs and INT8-friendly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDES = (8, 16, 32)

# name -> (stem, c2, c3, c4, c5, neck P3/P4/P5, blocks per stage)
SIZES = {
    "n": (16, 32, 64, 96, 128, (64, 96, 128), (1, 1, 1, 1)),
    "s": (24, 48, 96, 128, 192, (64, 96, 128), (1, 2, 2, 1)),
}


class ConvBNAct(nn.Sequential):
    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, act: bool = True):
        super().__init__(
            nn.Conv2d(c1, c2, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )


class Bottleneck(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.cv1 = ConvBNAct(c, c, 3)
        self.cv2 = ConvBNAct(c, c, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class CSPBlock(nn.Module):
    """C2f-style: split, n bottlenecks on one half keeping every intermediate, concat, fuse."""

    def __init__(self, c1: int, c2: int, n: int = 1):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = ConvBNAct(c1, 2 * self.c, 1)
        self.m = nn.ModuleList(Bottleneck(self.c) for _ in range(n))
        self.cv2 = ConvBNAct((2 + n) * self.c, c2, 1)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.cv1 = ConvBNAct(c, c // 2, 1)
        self.cv2 = ConvBNAct(c * 2, c, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class Head(nn.Module):
    """Decoupled per-level heads: box distribution (4 × reg_max bins) and class logits."""

    def __init__(self, nc: int, chans: tuple[int, ...], reg_max: int = 16):
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        cb = max(32, chans[0] // 2, reg_max * 2)
        cc = max(chans[0], min(nc, 128))
        self.box = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, cb, 3), ConvBNAct(cb, cb, 3), nn.Conv2d(cb, 4 * reg_max, 1))
            for c in chans
        )
        self.cls = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, cc, 3), ConvBNAct(cc, cc, 3), nn.Conv2d(cc, nc, 1)) for c in chans
        )

    def init_bias(self, input_size: int = 640):
        for b, c, s in zip(self.box, self.cls, STRIDES, strict=False):
            b[-1].bias.data[:] = 1.0
            c[-1].bias.data[:] = math.log(5 / self.nc / (input_size / s) ** 2)

    def forward(self, feats):
        """Returns a list per level of ``[B, 4*reg_max + nc, h, w]``."""
        return [torch.cat((b(x), c(x)), 1) for x, b, c in zip(feats, self.box, self.cls, strict=False)]


class EdgeDet(nn.Module):
    def __init__(self, nc: int, size: str = "n", reg_max: int = 16, reg_lo: int = 0):
        super().__init__()
        c1, c2, c3, c4, c5, (n3, n4, n5), nb = SIZES[size]
        # box distances are reg_max bins from -reg_lo to reg_max-1-reg_lo strides: reg_lo > 0 lets an anchor
        # just outside a thin box (a 3 px drainpipe between two grid rows) still regress it exactly
        self.nc, self.size, self.reg_max, self.reg_lo = nc, size, reg_max, reg_lo
        self.stem = nn.Sequential(ConvBNAct(3, c1, 3, 2), ConvBNAct(c1, c2, 3, 2), CSPBlock(c2, c2, nb[0]))
        self.s3 = nn.Sequential(ConvBNAct(c2, c3, 3, 2), CSPBlock(c3, c3, nb[1]))
        self.s4 = nn.Sequential(ConvBNAct(c3, c4, 3, 2), CSPBlock(c4, c4, nb[2]))
        self.s5 = nn.Sequential(ConvBNAct(c4, c5, 3, 2), CSPBlock(c5, c5, nb[3]), SPPF(c5))
        # top-down
        self.td4 = CSPBlock(c5 + c4, n4)
        self.td3 = CSPBlock(n4 + c3, n3)
        # bottom-up
        self.dn3 = ConvBNAct(n3, n3, 3, 2)
        self.bu4 = CSPBlock(n3 + n4, n4)
        self.dn4 = ConvBNAct(n4, n4, 3, 2)
        self.bu5 = CSPBlock(n4 + c5, n5)
        self.head = Head(nc, (n3, n4, n5), reg_max)
        self.head.init_bias()

    def forward(self, x):
        x3 = self.s3(self.stem(x))
        x4 = self.s4(x3)
        x5 = self.s5(x4)
        t4 = self.td4(torch.cat((F.interpolate(x5, scale_factor=2.0, mode="nearest"), x4), 1))
        p3 = self.td3(torch.cat((F.interpolate(t4, scale_factor=2.0, mode="nearest"), x3), 1))
        p4 = self.bu4(torch.cat((self.dn3(p3), t4), 1))
        p5 = self.bu5(torch.cat((self.dn4(p4), x5), 1))
        return self.head([p3, p4, p5])


def make_anchors(shapes, strides=STRIDES, offset: float = 0.5, device=None):
    """Grid-cell centres (in units of each level's stride) and the stride of every cell, level-major."""
    points, stride_t = [], []
    for (h, w), s in zip(shapes, strides, strict=False):
        sy, sx = torch.meshgrid(
            torch.arange(h, device=device, dtype=torch.float32) + offset,
            torch.arange(w, device=device, dtype=torch.float32) + offset,
            indexing="ij",
        )
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_t.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(points), torch.cat(stride_t)


def flatten_levels(outs, nc: int, reg_max: int):
    """List of level maps → ``(box_dist [B, N, 4*reg_max], cls_logits [B, N, nc])``."""
    b = outs[0].shape[0]
    cat = torch.cat([o.view(b, 4 * reg_max + nc, -1) for o in outs], 2).permute(0, 2, 1)
    return cat[..., : 4 * reg_max], cat[..., 4 * reg_max :]


class Decode(nn.Module):
    """DFL expectation → ltrb distances → cx,cy,w,h in input pixels; sigmoid scores. Float-only ops."""

    def __init__(self, nc: int, reg_max: int, anchors: torch.Tensor, strides: torch.Tensor, reg_lo: int = 0):
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        self.register_buffer("anchors", anchors.t().unsqueeze(0) * strides.t().unsqueeze(0))  # [1,2,N] px
        self.register_buffer("strides", strides.t().unsqueeze(0))  # [1,1,N]
        self.register_buffer(
            "bins", (torch.arange(reg_max, dtype=torch.float32) - reg_lo).view(1, reg_max, 1, 1)
        )

    def forward(self, box, cls):
        # box: [1, 4*reg_max, N]; cls: [1, nc, N]
        n = box.shape[-1]
        d = box.view(1, 4, self.reg_max, n).transpose(1, 2).softmax(1)  # [1, reg_max, 4, N]
        d = (d * self.bins).sum(1) * self.strides  # [1, 4, N] ltrb in px
        lt, rb = d[:, :2], d[:, 2:]
        cxy = self.anchors + (rb - lt) * 0.5
        wh = lt + rb
        return torch.cat((cxy, wh, cls.sigmoid()), 1)


class ExportWrapper(nn.Module):
    """Static-shape inference graph with the Ultralytics output layout."""

    def __init__(self, model: EdgeDet, height: int, width: int):
        super().__init__()
        self.model = model
        shapes = [(height // s, width // s) for s in STRIDES]
        anchors, strides = make_anchors(shapes)
        self.decode = Decode(model.nc, model.reg_max, anchors, strides, getattr(model, "reg_lo", 0))

    def forward(self, x):
        outs = self.model(x)
        b = 1
        cat = torch.cat([o.reshape(b, o.shape[1], -1) for o in outs], 2)
        return self.decode(cat[:, : 4 * self.model.reg_max], cat[:, 4 * self.model.reg_max :])


def _module_path(node_name: str) -> str:
    """TorchScript-export scope of a Conv node → the module's dotted path inside ``EdgeDet``.

    ``/model/stem/stem.2/cv1/cv1.0/Conv`` → ``stem.2.cv1.0``: a segment that extends the previous one
    (``stem`` → ``stem.2``) names a child of a container, any other segment is an attribute.
    """
    parts: list[str] = []
    for seg in node_name.strip("/").split("/")[1:-1]:  # drop the wrapper's "model" and the op name
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def from_onnx(path, size: str | None = None) -> EdgeDet:
    """An ``EdgeDet`` holding the weights of an exported ``model-fp32.onnx`` (a shipped package's, or one
    from ``scripts/export_model.py``), to fine-tune a package when its ``model.pt`` is not at hand.

    The export folded every BatchNorm into its conv, so each BN is loaded as the identity plus the folded
    bias (weight 1, mean 0, variance 1 − eps) and marked ``frozen_bn``: training must keep BN layers in
    eval mode (``freeze_bn``), as batch statistics would undo the folding. The result computes what the
    ONNX graph computes (checked by ``scripts/train_model.py --init``).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    if "decode.bins" not in init:
        raise ValueError(
            f"{path}: not an EdgeDet export (no decode.bins); only our own exports can seed training"
        )
    bins = init["decode.bins"].reshape(-1)
    reg_max, reg_lo = len(bins), int(round(-float(bins[0])))
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    nc = int(dims[1]) - 4
    convs = [n for n in graph.node if n.op_type == "Conv"]
    stem_out = init[convs[0].input[1]].shape[0]
    size = size or next(k for k, v in SIZES.items() if v[0] == stem_out)
    model = EdgeDet(nc, size, reg_max, reg_lo)
    loaded = set()
    with torch.no_grad():
        for node in convs:
            name = _module_path(node.name)
            conv = model.get_submodule(name)
            w, b = init[node.input[1]], init[node.input[2]] if len(node.input) > 2 else None
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(
                    f"{path}: {name} has shape {w.shape}, EdgeDet-{size} expects {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(np.array(b)))
            else:
                bn = model.get_submodule(name.rsplit(".", 1)[0] + ".1")
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(np.array(b)))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            loaded.add(name)
    expected = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if loaded != expected:
        raise ValueError(f"{path}: convs not found in the graph: {sorted(expected - loaded)[:5]}")
    model.frozen_bn = True
    _check_against_onnx(model.eval(), path)
    return model


def _check_against_onnx(model: EdgeDet, path) -> None:
    """The loaded model and the ONNX graph must agree on a random input (raises otherwise)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    height, width = int(inp.shape[2]), int(inp.shape[3])
    x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    want = session.run(None, {inp.name: x})[0]
    with torch.no_grad():
        got = ExportWrapper(model, height, width).eval()(torch.from_numpy(x)).numpy()
    scores, boxes = np.abs(want[:, 4:] - got[:, 4:]).max(), np.abs(want[:, :4] - got[:, :4]).max()
    if scores > 1e-3 or boxes > 0.05:
        raise ValueError(
            f"{path}: weights loaded but outputs differ (scores {scores:.2g}, boxes {boxes:.2g} px)"
        )


def freeze_bn(model: nn.Module) -> None:
    """BatchNorm layers in eval mode (running statistics fixed; their affine weights still train)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()

