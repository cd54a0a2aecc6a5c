"""Building facades: windows, doors, balconies, drainpipes, AC units, roof edges and signage on brick,
plaster or concrete, 1-8 storeys, mild perspective. Truth: storey of each component (0 = ground floor).
See docs/datasets.md for the storey rule.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import common as C

DOMAIN = "facades"
NAMES: tuple[str, ...] = ("window", "door", "balcony", "drainpipe", "ac-unit", "roof-edge", "signage")
CLS = {n: i for i, n in enumerate(NAMES)}
SIGN_WORDS = (
    "BAKERY",
    "PHARMACY",
    "CAFE LUNA",
    "HARDWARE",
    "BOOKS",
    "FLOWERS",
    "MARKET",
    "DENTAL",
    "OPTICS",
    "KEBAB",
)


def storey_of(y_center: float, floor_lines: list[float]) -> int:
    """Storey index (0 = ground) of the band containing ``y_center``; ``floor_lines[k]`` is the bottom of
    storey k (image y, decreasing upwards), ``floor_lines[n]`` the top of the top storey. Clamped."""
    n = len(floor_lines) - 1
    for k in range(n):
        if floor_lines[k + 1] <= y_center < floor_lines[k] + 1e-9:
            return k
    return 0 if y_center >= floor_lines[0] else n - 1


def _brick(rng, h, w, s):
    base = np.float32(
        C.jitter_color(
            rng, [(60, 80, 150), (70, 100, 170), (90, 110, 140), (120, 140, 170)][int(rng.integers(0, 4))], 15
        )
    )
    bh, bw = max(3, int(7 * s)), max(8, int(22 * s))
    ys, xs = np.mgrid[0:h, 0:w]
    row = ys // bh
    col = (xs + (row % 2) * (bw // 2)) // bw
    lut = rng.uniform(0.8, 1.15, (row.max() + 2, col.max() + 2)).astype(np.float32)
    f = lut[row, col]
    mortar = ((ys % bh) == 0) | (((xs + (row % 2) * (bw // 2)) % bw) == 0)
    img = f[..., None] * base[None, None, :]
    img[mortar] = C.jitter_color(rng, (170, 175, 180), 20)
    return img * (1 + 0.06 * C.smooth_noise(rng, h, w, 8, 2))[..., None]


def _wall(rng, h, w, s):
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return _brick(rng, h, w, s), "brick"
    if kind == 1:
        col = C.jitter_color(
            rng,
            [(200, 215, 225), (170, 200, 230), (210, 210, 200), (160, 180, 200)][int(rng.integers(0, 4))],
            15,
        )
        return C.mottled(rng, h, w, col, 0.08, 10), "plaster"
    img = C.mottled(rng, h, w, C.jitter_color(rng, (150, 152, 150), 15), 0.1, 12)
    step = int(rng.integers(60, 140) * s) + 8
    for x in range(0, w, step):
        cv2.line(img, (x, 0), (x, h), (110, 110, 110), 1)
    return img, "concrete"


def generate(rng: np.random.Generator, W: int = 1280, H: int = 720):
    sky = np.linspace(0, 1, H, dtype=np.float32)
    top_col = np.float32(C.jitter_color(rng, (230, 190, 150), 20))
    bot_col = np.float32(C.jitter_color(rng, (245, 230, 215), 15))
    canvas = np.ascontiguousarray(
        np.broadcast_to(
            (top_col[None, :] * (1 - sky[:, None]) + bot_col[None, :] * sky[:, None])[:, None, :], (H, W, 3)
        )
    )
    n = int(rng.integers(1, 9))
    ground_y = H * rng.uniform(0.84, 0.95)
    top_y = H * rng.uniform(0.05, 0.22)
    storey_h = (ground_y - top_y) / n
    s = storey_h / 110.0 if n > 1 else min(1.6, storey_h / 110.0)
    fx0 = int(W * rng.uniform(0.0, 0.12))
    fx1 = int(W * rng.uniform(0.88, 1.0))
    wall, material = _wall(rng, int(ground_y - top_y) + 1, fx1 - fx0, s)
    canvas[int(top_y) : int(top_y) + wall.shape[0], fx0:fx1] = wall
    # pavement
    canvas[int(ground_y) :] = C.mottled(
        rng, H - int(ground_y), W, C.jitter_color(rng, (120, 125, 128), 15), 0.1
    )
    floor_lines = [ground_y - k * storey_h for k in range(n + 1)]
    objs = []  # (cls, pts, storey_hint)

    def rect(cls, x1, y1, x2, y2, color, storey):
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), color, -1)
        objs.append((cls, C.rect_pts(int(x1), int(y1), int(x2), int(y2))))

    # roof edge: a parapet / cornice band across the facade top
    re_h = max(4, int(rng.uniform(8, 16) * s))
    rect(
        "roof-edge",
        fx0,
        top_y - re_h * 0.6,
        fx1,
        top_y + re_h * 0.4,
        C.jitter_color(rng, (90, 95, 100), 25),
        n - 1,
    )
    cv2.line(
        canvas,
        (fx0, int(top_y + re_h * 0.4)),
        (fx1, int(top_y + re_h * 0.4)),
        (50, 50, 50),
        max(1, int(2 * s)),
    )
    # window columns
    n_cols = int(rng.integers(3, 9))
    margin = (fx1 - fx0) * 0.06
    pitch = ((fx1 - fx0) - 2 * margin) / n_cols
    win_w = pitch * rng.uniform(0.4, 0.62)
    win_h = storey_h * rng.uniform(0.45, 0.6)
    frame = C.jitter_color(rng, [(240, 240, 240), (60, 60, 60), (40, 80, 120)][int(rng.integers(0, 3))], 10)
    glass = np.float32(C.jitter_color(rng, (120, 100, 80), 25))
    balcony_storeys = {k for k in range(1, n) if rng.random() < 0.35}
    drain_x = (
        fx0 + margin * rng.uniform(0.2, 0.5) if rng.random() < 0.5 else fx1 - margin * rng.uniform(0.2, 0.5)
    )
    for k in range(n):
        fl = floor_lines[k]
        for c in range(n_cols):
            cx = fx0 + margin + (c + 0.5) * pitch
            if k == 0:
                if c == n_cols // 2 or (c == 0 and rng.random() < 0.3):
                    dw, dh = pitch * 0.45, storey_h * 0.78
                    x1, y1 = cx - dw / 2, fl - dh
                    cv2.rectangle(
                        canvas,
                        (int(x1), int(y1)),
                        (int(x1 + dw) - 1, int(fl) - 1),
                        C.jitter_color(rng, (40, 60, 90), 30),
                        -1,
                    )
                    cv2.rectangle(
                        canvas,
                        (int(x1 + dw * 0.12), int(y1 + dh * 0.08)),
                        (int(x1 + dw * 0.88), int(y1 + dh * 0.5)),
                        tuple(float(v) for v in glass * 0.8),
                        -1,
                    )
                    cv2.circle(
                        canvas,
                        (int(x1 + dw * 0.8), int(y1 + dh * 0.6)),
                        max(1, int(2 * s)),
                        (150, 200, 220),
                        -1,
                    )
                    objs.append(("door", C.rect_pts(int(x1), int(y1), int(x1 + dw), int(fl))))
                    continue
            if rng.random() < 0.08:
                continue
            x1, y1 = cx - win_w / 2, fl - storey_h * 0.25 - win_h
            x2, y2 = x1 + win_w, y1 + win_h
            cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), frame, -1)
            ft = max(1, int(3 * s))
            gl = glass * rng.uniform(0.8, 1.3)
            cv2.rectangle(
                canvas,
                (int(x1) + ft, int(y1) + ft),
                (int(x2) - 1 - ft, int(y2) - 1 - ft),
                tuple(float(v) for v in gl),
                -1,
            )
            cv2.line(canvas, (int(cx), int(y1)), (int(cx), int(y2) - 1), frame, ft)
            if rng.random() < 0.4:  # reflection
                cv2.line(
                    canvas,
                    (int(x1 + win_w * 0.2), int(y2 - ft * 2)),
                    (int(x1 + win_w * 0.5), int(y1 + ft * 2)),
                    (235, 235, 235),
                    max(1, int(2 * s)),
                    cv2.LINE_AA,
                )
            sill = max(2, int(3 * s))
            cv2.rectangle(
                canvas, (int(x1) - sill, int(y2)), (int(x2) + sill, int(y2) + sill), (200, 200, 205), -1
            )
            objs.append(("window", C.rect_pts(int(x1) - sill, int(y1), int(x2) + sill, int(y2) + sill)))
            if k in balcony_storeys and c % 2 == 1:
                bx1, bx2 = cx - pitch * 0.45, cx + pitch * 0.45
                by2 = fl + storey_h * 0.04
                by1 = fl - storey_h * 0.32
                cv2.rectangle(
                    canvas, (int(bx1), int(fl - storey_h * 0.02)), (int(bx2), int(by2)), (170, 170, 170), -1
                )
                rail = C.jitter_color(rng, (40, 40, 40), 20)
                cv2.line(canvas, (int(bx1), int(by1)), (int(bx2), int(by1)), rail, max(1, int(2 * s)))
                for xx in np.arange(bx1, bx2 + 1, max(3, 7 * s)):
                    cv2.line(canvas, (int(xx), int(by1)), (int(xx), int(fl)), rail, 1)
                objs.append(("balcony", C.rect_pts(int(bx1), int(by1) - 1, int(bx2) + 1, int(by2) + 1)))
            elif k > 0 and rng.random() < 0.12:
                aw, ah = pitch * 0.28, storey_h * 0.2
                ax1 = x2 + pitch * 0.06
                ay1 = fl - storey_h * 0.25 - ah
                cv2.rectangle(
                    canvas, (int(ax1), int(ay1)), (int(ax1 + aw), int(ay1 + ah)), (225, 228, 230), -1
                )
                cv2.circle(
                    canvas,
                    (int(ax1 + aw * 0.35), int(ay1 + ah / 2)),
                    max(2, int(ah * 0.35)),
                    (90, 90, 90),
                    1,
                    cv2.LINE_AA,
                )
                for yy in np.arange(ay1 + 2, ay1 + ah - 1, 3):
                    cv2.line(
                        canvas,
                        (int(ax1 + aw * 0.65), int(yy)),
                        (int(ax1 + aw * 0.92), int(yy)),
                        (150, 150, 150),
                        1,
                    )
                objs.append(("ac-unit", C.rect_pts(int(ax1), int(ay1), int(ax1 + aw) + 1, int(ay1 + ah) + 1)))
    # signage on the ground floor
    if rng.random() < 0.6 and n >= 1:
        text = SIGN_WORDS[int(rng.integers(0, len(SIGN_WORDS)))]
        sw = (fx1 - fx0) * rng.uniform(0.2, 0.4)
        sh = storey_h * rng.uniform(0.12, 0.18)
        sx = fx0 + (fx1 - fx0) * rng.uniform(0.05, 0.55)
        sy = floor_lines[0] - storey_h * 0.96
        bg = C.jitter_color(
            rng, [(40, 40, 160), (120, 60, 20), (30, 30, 30), (40, 120, 40)][int(rng.integers(0, 4))], 20
        )
        patch = np.zeros((max(4, int(sh)), max(8, int(sw)), 3), np.uint8)
        patch[:] = bg
        C.put_text_fit(
            patch,
            text,
            (patch.shape[1] * 0.05, patch.shape[0] * 0.1, patch.shape[1] * 0.95, patch.shape[0] * 0.9),
            (245, 245, 245),
            800,
        )
        canvas[int(sy) : int(sy) + patch.shape[0], int(sx) : int(sx) + patch.shape[1]] = patch
        objs.append(
            ("signage", C.rect_pts(int(sx), int(sy), int(sx) + patch.shape[1], int(sy) + patch.shape[0]))
        )
    # drainpipe from roof to ground
    if rng.random() < 0.7:
        pw = max(3, int(7 * s))
        x1 = int(drain_x - pw / 2)
        col = C.jitter_color(rng, [(60, 60, 60), (200, 200, 200), (40, 60, 90)][int(rng.integers(0, 3))], 10)
        cv2.rectangle(canvas, (x1, int(top_y)), (x1 + pw - 1, int(ground_y) - 1), col, -1)
        cv2.line(
            canvas,
            (x1 + pw // 3, int(top_y)),
            (x1 + pw // 3, int(ground_y) - 1),
            tuple(min(255, c + 50) for c in col),
            1,
        )
        for k in range(n):
            cv2.rectangle(
                canvas,
                (x1 - 1, int(floor_lines[k] - storey_h * 0.5)),
                (x1 + pw, int(floor_lines[k] - storey_h * 0.5) + 2),
                (30, 30, 30),
                -1,
            )
        objs.append(("drainpipe", C.rect_pts(x1 - 1, int(top_y), x1 + pw + 1, int(ground_y))))

    Hm = C.random_homography(rng, W, H, 0.04) if rng.random() < 0.7 else None
    if Hm is not None:
        canvas = cv2.warpPerspective(
            canvas, Hm, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    xyxys = C.boxes_of([o[1] for o in objs], Hm, W, H)
    boxes, comps = [], []
    for i, ((name, pts), xyxy) in enumerate(zip(objs, xyxys, strict=True)):
        if xyxy[2] - xyxy[0] < 1 or xyxy[3] - xyxy[1] < 1:
            continue
        ys = pts[:, 1]
        cy = float((ys.min() + ys.max()) / 2)
        boxes.append((CLS[name], xyxy))
        comps.append(
            {
                "id": i,
                "class": name,
                "storey": storey_of(cy, floor_lines),
                "storeySpan": [
                    storey_of(float(ys.max()) - 0.5, floor_lines),
                    storey_of(float(ys.min()) + 0.5, floor_lines),
                ],
                "xyxy": [C.r2(v) for v in xyxy],
                "boundingBox": C.box_dict(xyxy),
            }
        )
    counts = {nm: sum(1 for c in comps if c["class"] == nm) for nm in NAMES}
    truth = {
        "domain": DOMAIN,
        "width": W,
        "height": H,
        "material": material,
        "storeyCount": n,
        "floorLinesY": [C.r2(v) for v in floor_lines],
        "components": comps,
        "summary": {"storeyCount": n, "componentCounts": counts, "totalComponents": len(comps)},
    }
    return canvas, boxes, truth


def make(rng: np.random.Generator, width: int, height: int):
    canvas, boxes, truth = generate(rng, width, height)
    img = C.photo_finish(canvas, rng)
    return C.Sample(img, C.jpeg_quality(rng), boxes, truth)
