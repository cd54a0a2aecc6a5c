"""``Detector``: a model package opened on one backend and device, image in, ``Detections`` out.

The three stages (``preprocess``, ``infer``, ``postprocess``) stay callable on their own so a throughput
pipeline can overlap decode/preprocess of one image with inference of another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgecv.detections import Detections
from edgecv.errors import ModelPackageError
from edgecv.runtime.backends import Backend, OnnxRuntimeBackend, OpenVinoBackend
from edgecv.runtime.decode import decode
from edgecv.runtime.package import BACKENDS, ModelPackage, WeightSet
from edgecv.runtime.preprocess import LetterboxInfo, fit_to_input, to_tensor

log = logging.getLogger(__name__)

BACKEND_ALIASES = {"onnxruntime": "onnx", "ort": "onnx", "ov": "openvino"}


def resolve_weights(
    package: ModelPackage, backend: str = "auto", precision: str | None = None
) -> tuple[str, WeightSet]:
    """The runtime to use and the weight set it reads.

    ``auto`` is the manifest default. OpenVINO also reads ONNX files, so ``openvino`` on a package
    with only ONNX weights (a typical custom model) runs its ``.onnx`` weights on OpenVINO.
    """
    backend = BACKEND_ALIASES.get(backend.lower(), backend.lower())
    if backend == "auto":
        available = {w.backend for w in package.weights}
        backend = next(b for b in (package.default_backend, *BACKENDS) if b in available)
    elif backend not in BACKENDS:
        raise ModelPackageError(f"backend: expected auto, {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "openvino" and not any(w.backend == "openvino" for w in package.weights):
        log.info("model %s has no OpenVINO IR; OpenVINO will read its ONNX weights", package.name)
        return backend, package.weight_set("onnx", precision)
    return backend, package.weight_set(backend, precision)


class Detector:
    """A loaded model. Thread-safe: ``detect`` may be called from several worker threads."""

    def __init__(self, package: ModelPackage, runtime: Backend, weights: WeightSet) -> None:
        self.package = package
        self.runtime = runtime
        self.backend = runtime.name
        self.precision = weights.precision
        self.device = runtime.device
        self._check_shapes()

    @classmethod
    def open(
        cls,
        package: ModelPackage,
        *,
        backend: str = "auto",
        precision: str | None = None,
        device: str = "CPU",
        cache_dir: Path | None = None,
        performance_hint: str = "LATENCY",
        inference_precision: str | None = None,
        num_threads: int | None = None,
        cpu_pinning: bool | None = None,
    ) -> Detector:
        """Open ``package`` on ``backend`` (``auto``, ``openvino``, ``onnx``) and ``device``.

        ``inference_precision`` (OpenVINO only): ``None`` keeps OpenVINO's default, which is bf16 for
        FP32 models on bf16-capable CPUs; pass ``"f32"`` to force full precision.
        """
        name, weights = resolve_weights(package, backend, precision)
        model_path = package.model_path(weights)
        if name == "openvino":
            runtime: Backend = OpenVinoBackend(
                model_path,
                device=device,
                cache_dir=cache_dir,
                performance_hint=performance_hint,
                inference_precision=inference_precision,
                num_threads=num_threads,
                cpu_pinning=cpu_pinning,
                input_spec=package.input,
            )
        else:
            runtime = OnnxRuntimeBackend(model_path, device=device, num_threads=num_threads)
        log.info(
            "opened model %s %s (%s/%s) on %s",
            package.name,
            package.version,
            name,
            weights.precision,
            runtime.device,
        )
        return cls(package, runtime, weights)

    def _check_shapes(self) -> None:
        """Refuse a model whose input/output does not match its manifest, before any job runs."""
        spec = self.package.input
        expected_in = (
            [1, 3, spec.height, spec.width] if spec.layout == "NCHW" else [1, spec.height, spec.width, 3]
        )
        got_in = self.runtime.input_shape
        if (
            self.runtime.takes_bgr_u8 and len(got_in) == 4
        ):  # the graph's own NHWC uint8 input: compare as NCHW
            got_in = [got_in[0], got_in[3], got_in[1], got_in[2]]
        if len(got_in) != 4 or any(
            g is not None and g != e for g, e in zip(got_in, expected_in, strict=True)
        ):
            raise ModelPackageError(
                f"model {self.package.name!r}: input: expected shape {expected_in} (from the manifest), got {got_in}"
            )
        channels = 4 + self.package.num_classes
        got_out = self.runtime.output_shape
        if len(got_out) != 3 or (got_out[1] is not None and channels not in got_out[1:]):
            raise ModelPackageError(
                f"model {self.package.name!r}: output: expected shape [1, {channels}, N] "
                f"(4 + {self.package.num_classes} labels), got {got_out}"
            )

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        return self.package.input.width, self.package.input.height

    def preprocess(
        self, image_bgr: np.ndarray, *, size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, LetterboxInfo]:
        """The network input for one image: the fitted uint8 image itself when the graph converts it
        (OpenVINO), else a float tensor built here. ``size``: the original (width, height) when
        ``image_bgr`` was decoded reduced; the geometry returned then maps to original pixels."""
        if self.runtime.takes_bgr_u8:
            image, info = fit_to_input(image_bgr, self.package.input)
            tensor = np.ascontiguousarray(image)[None]
        else:
            tensor, info = to_tensor(image_bgr, self.package.input)
        return tensor, info if size is None else info.for_original(image_bgr.shape, size)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Raw ``[1, 4+nc, N]`` output for one input tensor."""
        return self.runtime.infer(tensor)

    def infer_queue(self, callback):
        """Overlapped inference: ``queue.submit(tensor, userdata)``; ``callback(userdata, raw, error)``."""
        return self.runtime.infer_queue(callback)

    def postprocess(
        self,
        raw: np.ndarray,
        info: LetterboxInfo,
        image_shape: tuple[int, ...],
        *,
        conf: float | None = None,
        iou: float | None = None,
        max_detections: int | None = None,
    ) -> Detections:
        t = self.package.thresholds
        return decode(
            raw,
            info,
            image_shape,
            conf=t.confidence if conf is None else conf,
            iou=t.iou if iou is None else iou,
            max_detections=t.max_detections if max_detections is None else max_detections,
            num_classes=self.package.num_classes,
            agnostic=t.agnostic,
        )

    def detect(
        self,
        image_bgr: np.ndarray,
        *,
        conf: float | None = None,
        iou: float | None = None,
        max_detections: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> Detections:
        """Detections in original-image pixels; thresholds default to the manifest's. ``size``: the
        original (width, height) when ``image_bgr`` was decoded reduced."""
        tensor, info = self.preprocess(image_bgr, size=size)
        raw = self.infer(tensor)
        shape = image_bgr.shape if size is None else (size[1], size[0])
        return self.postprocess(raw, info, shape, conf=conf, iou=iou, max_detections=max_detections)

    def __repr__(self) -> str:
        return f"Detector({self.package.name!r}, backend={self.backend!r}, precision={self.precision!r}, device={self.device!r})"
