"""Detection loss: task-aligned assignment (TOOD) + BCE class loss + CIoU + distribution focal loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .model import STRIDES, flatten_levels, make_anchors


def box_iou_ciou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7, ciou: bool = True) -> torch.Tensor:
    """Element-wise (C)IoU of xyxy boxes with broadcastable shapes ``[..., 4]``."""
    b1x1, b1y1, b1x2, b1y2 = b1.unbind(-1)
    b2x1, b2y1, b2x2, b2y2 = b2.unbind(-1)
    w1, h1 = b1x2 - b1x1, (b1y2 - b1y1).clamp(min=eps)
    w2, h2 = b2x2 - b2x1, (b2y2 - b2y1).clamp(min=eps)
    inter = (torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0) * (
        torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)
    ).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not ciou:
        return iou
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b2x1 + b2x2 - b1x1 - b1x2) ** 2 + (b2y1 + b2y2 - b1y1 - b1y2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class TaskAlignedAssigner(nn.Module):
    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9):
        super().__init__()
        self.topk, self.alpha, self.beta, self.eps = topk, alpha, beta, eps

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, anc_strides, gt_labels, gt_bboxes, mask_gt):
        """pd_scores [B,N,C] (sigmoid), pd_bboxes [B,N,4] xyxy px, anc_points [N,2] and anc_strides [N,1] px,
        gt_labels [B,M,1], gt_bboxes [B,M,4] xyxy px, mask_gt [B,M,1].

        Returns target boxes [B,N,4], alignment-weighted target scores [B,N,C], foreground mask [B,N]."""
        bs, n_max = gt_bboxes.shape[:2]
        if n_max == 0:
            return (
                torch.zeros_like(pd_bboxes),
                torch.zeros_like(pd_scores),
                torch.zeros(pd_scores.shape[:2], dtype=torch.bool, device=pd_scores.device),
            )
        # candidate anchors: centre inside the gt box, the box grown to at least 1.5 strides per side so
        # that tiny objects (price tags a few pixels tall) still get positives: [B, M, N]
        half_min = 0.75 * anc_strides.view(1, 1, -1)
        gc = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2
        gh = (gt_bboxes[..., 2:] - gt_bboxes[..., :2]) / 2
        dx = (anc_points[None, None, :, 0] - gc[..., 0:1]).abs()
        dy = (anc_points[None, None, :, 1] - gc[..., 1:2]).abs()
        in_gts = (dx < torch.maximum(gh[..., 0:1], half_min)) & (dy < torch.maximum(gh[..., 1:2], half_min))
        in_gts = in_gts & mask_gt.bool()
        # everything below works on the candidate (image, gt, anchor) pairs only: dense shelves have
        # M ~ 150 boxes and N ~ 5000 anchors, so dense [B, M, N] tensors would dominate the step time
        b_i, m_i, n_i = in_gts.nonzero(as_tuple=True)
        n_anchor, nc = pd_scores.shape[1], pd_scores.shape[2]
        cls_idx = gt_labels.squeeze(-1).long()
        iou = box_iou_ciou(gt_bboxes[b_i, m_i], pd_bboxes[b_i, n_i], ciou=False).clamp_(0)
        score = pd_scores[b_i, n_i, cls_idx[b_i, m_i]]
        align = score.pow(self.alpha) * iou.pow(self.beta)
        gt_id = b_i * n_max + m_i
        # top-k pairs per gt by alignment
        keep = _rank_within(gt_id, align) < self.topk
        b_i, m_i, n_i, iou, align, gt_id = (
            b_i[keep],
            m_i[keep],
            n_i[keep],
            iou[keep],
            align[keep],
            gt_id[keep],
        )
        # an anchor claimed by several gts goes to the one it overlaps most
        anchor_id = b_i * n_anchor + n_i
        keep = _rank_within(anchor_id, iou) < 1
        b_i, m_i, n_i, iou, align, gt_id = (
            b_i[keep],
            m_i[keep],
            n_i[keep],
            iou[keep],
            align[keep],
            gt_id[keep],
        )
        # per-gt normalisation: align / max align of that gt * max IoU of that gt
        n_gt = bs * n_max
        max_align = torch.zeros(n_gt, device=align.device).scatter_reduce_(0, gt_id, align, "amax")
        max_iou = torch.zeros(n_gt, device=align.device).scatter_reduce_(0, gt_id, iou, "amax")
        norm = align * max_iou[gt_id] / (max_align[gt_id] + self.eps)
        fg_mask = torch.zeros(bs, n_anchor, dtype=torch.bool, device=pd_scores.device)
        fg_mask[b_i, n_i] = True
        t_bboxes = torch.zeros_like(pd_bboxes)
        t_bboxes[b_i, n_i] = gt_bboxes[b_i, m_i]
        t_scores = torch.zeros(bs, n_anchor, nc, dtype=pd_scores.dtype, device=pd_scores.device)
        t_scores[b_i, n_i, cls_idx[b_i, m_i]] = norm.to(t_scores.dtype)
        return t_bboxes, t_scores, fg_mask


def _rank_within(group: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Rank of each element inside its group by descending ``value`` (0 = best)."""
    if group.numel() == 0:
        return group
    order = torch.argsort(value, descending=True)
    order = order[torch.argsort(group[order], stable=True)]
    g_sorted = group[order]
    pos = torch.arange(len(order), device=group.device)
    start = torch.zeros_like(pos)
    new_group = torch.ones_like(g_sorted, dtype=torch.bool)
    new_group[1:] = g_sorted[1:] != g_sorted[:-1]
    start = torch.cummax(torch.where(new_group, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - start
    return rank


class DetectionLoss:
    def __init__(
        self,
        nc: int,
        reg_max: int = 16,
        box_gain: float = 7.5,
        cls_gain: float = 0.5,
        dfl_gain: float = 1.5,
        reg_lo: int = 0,
    ):
        self.nc, self.reg_max, self.reg_lo = nc, reg_max, reg_lo
        self.gains = (box_gain, cls_gain, dfl_gain)
        self.assigner = TaskAlignedAssigner()
        self.bce = nn.BCEWithLogitsLoss(reduction="none")
        self._cache: dict = {}

    def _anchors(self, shapes, device):
        key = (tuple(shapes), str(device))
        if key not in self._cache:
            self._cache[key] = make_anchors(shapes, STRIDES, device=device)
        return self._cache[key]

    def decode(self, anc, dist):
        b, n, _ = dist.shape
        proj = torch.arange(self.reg_max, dtype=dist.dtype, device=dist.device) - self.reg_lo
        d = dist.view(b, n, 4, self.reg_max).softmax(-1) @ proj
        return torch.cat((anc - d[..., :2], anc + d[..., 2:]), -1)

    def dfl(self, dist, target):
        """dist [n, reg_max] logits, target [n] continuous bin coordinate in [0, reg_max-1)."""
        tl = target.long()
        tr = tl + 1
        wl = tr - target
        wr = 1 - wl
        return (
            F.cross_entropy(dist, tl, reduction="none") * wl
            + F.cross_entropy(dist, tr, reduction="none") * wr
        )

    def __call__(self, outs, targets):
        """outs: model output list; targets: [K, 6] = (batch_idx, cls, x1, y1, x2, y2) in input pixels."""
        device = outs[0].device
        shapes = [o.shape[2:] for o in outs]
        anc, stride = self._anchors(shapes, device)  # grid units, [N,1]
        pred_dist, pred_cls = flatten_levels(outs, self.nc, self.reg_max)
        bs = pred_cls.shape[0]
        # gt tensor [B, M, 5]
        counts = (
            torch.bincount(targets[:, 0].long(), minlength=bs)
            if len(targets)
            else torch.zeros(bs, dtype=torch.long)
        )
        m = int(counts.max()) if len(targets) else 0
        gt = torch.zeros(bs, m, 5, device=device)
        for i in range(bs):
            sel = targets[targets[:, 0] == i]
            if len(sel):
                gt[i, : len(sel)] = sel[:, 1:]
        gt_labels, gt_bboxes = gt[..., :1], gt[..., 1:]
        mask_gt = (gt_bboxes.sum(-1, keepdim=True) > 0).float()

        pred_boxes = self.decode(anc, pred_dist.float())  # grid units
        t_boxes, t_scores, fg = self.assigner(
            pred_cls.detach().sigmoid(),
            (pred_boxes.detach() * stride).type(gt_bboxes.dtype),
            anc * stride,
            stride,
            gt_labels,
            gt_bboxes,
            mask_gt,
        )
        t_sum = max(t_scores.sum(), 1.0)
        loss_cls = self.bce(pred_cls.float(), t_scores).sum() / t_sum
        loss_box = torch.zeros((), device=device)
        loss_dfl = torch.zeros((), device=device)
        if fg.any():
            weight = t_scores.sum(-1)[fg]
            tb = t_boxes / stride  # grid units
            iou = box_iou_ciou(pred_boxes[fg], tb[fg])
            loss_box = ((1.0 - iou) * weight).sum() / t_sum
            a = anc.unsqueeze(0).expand(bs, -1, -1)[fg]
            ltrb = torch.cat((a - tb[fg][:, :2], tb[fg][:, 2:] - a), -1)
            ltrb = (ltrb + self.reg_lo).clamp(0, self.reg_max - 1 - 0.01)  # bin coordinates
            d = pred_dist[fg].view(-1, self.reg_max)
            loss_dfl = (self.dfl(d, ltrb.view(-1)).view(-1, 4).mean(-1) * weight).sum() / t_sum
        g = self.gains
        total = (g[0] * loss_box + g[1] * loss_cls + g[2] * loss_dfl) * bs
        return total, torch.stack((loss_box, loss_cls, loss_dfl)).detach()
