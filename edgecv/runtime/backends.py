"""Inference backends: OpenVINO and ONNX Runtime behind one small interface.

A backend turns an input tensor into the raw output tensor and nothing else; decoding lives in
``decode.py``. Device choice is a pure function (``choose_device``) so it can be tested without hardware.
Both backends are safe to share between threads: ONNX Runtime sessions are re-entrant and the
OpenVINO backend keeps one infer request per thread instead of a global lock.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecv.errors import InferenceError, ModelPackageError
from edgecv.threads import usable_cores

log = logging.getLogger(__name__)

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
# Order tried for AUTO: accelerators first; AUTO starts on CPU while an accelerator compiles.
AUTO_PREFERENCE = ("GPU", "NPU", "CPU")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
INFERENCE_PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}


# ``ONEDNN_MAX_CPU_ISA`` values (oneDNN's names) under which bf16 kernels are not available
_NO_BF16_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def _isa_cap_without_bf16() -> bool:
    """Whether an operator (or ``scripts/bench.py --isa``) capped oneDNN below bf16 (docs/performance.md)."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _NO_BF16_ISAS


class Backend(Protocol):
    name: str
    device: str
    metadata: dict[str, str]  # the model file's metadata entries asked for (``metadata_keys``)

    @property
    def input_shape(self) -> list[int | None]: ...

    @property
    def output_shape(self) -> list[int | None]: ...

    def infer(self, tensor: np.ndarray) -> np.ndarray: ...


def choose_device(requested: str, available: list[str]) -> str:
    """The OpenVINO device string to compile for, given what was asked and what the machine has.

    ``CPU``/``GPU``/``NPU`` (or an indexed one like ``GPU.1``) are used when present, else CPU with a
    warning. ``AUTO`` becomes OpenVINO's AUTO plugin over the present devices, best first, or plain
    ``CPU`` when that is all there is.
    """
    wanted = (requested or "CPU").strip().upper()
    if wanted == "AUTO":
        present = [d for d in AUTO_PREFERENCE if any(a.split(".")[0] == d for a in available)]
        chosen = "CPU" if present in ([], ["CPU"]) else "AUTO:" + ",".join(present)
        log.info("device AUTO: available %s, chosen %s", available, chosen)
        return chosen
    if wanted in available or (wanted in DEVICES and any(a.split(".")[0] == wanted for a in available)):
        return wanted
    log.warning(
        "device %s was requested but is not available (available: %s); using CPU", requested, available
    )
    return "CPU"


_ov_numpy_lock = threading.Lock()
_ov_numpy_ready = False


def openvino_numpy_ready() -> None:
    """Run the one-time numpy set-up of OpenVINO's Python bindings now, on this thread, once per process.

    Call it before an OpenVINO compile is handed to other threads. The bindings keep a C++ function-local
    static (the element type → numpy dtype table behind ``Type.to_dtype``, used by every ``infer``) whose
    first initialisation releases the GIL (pybind11's numpy import) while holding the static's guard. Two
    threads making their first call at once deadlock: one waits for the GIL inside the guard, the other
    waits for the guard holding the GIL, and with the GIL held no other thread, nor a signal handler, ever
    runs again (backlog lanes after a restart, 12 of 20 runs on a loaded 2-core box)."""
    global _ov_numpy_ready
    if _ov_numpy_ready:
        return
    import openvino as ov

    with _ov_numpy_lock:  # a Python lock: a second thread waits here without holding the GIL
        if not _ov_numpy_ready:
            ov.Type.f32.to_dtype()
            _ov_numpy_ready = True


def _dims(partial_shape) -> list[int | None]:
    return [d.get_length() if d.is_static else None for d in partial_shape]


def _with_preprocessing(model, spec):
    """u8 NHWC BGR in → f32 NCHW (RGB or BGR) / scale, inside the graph."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    inp = ppp.input(0)
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    inp.model().set_layout(ov.Layout("NCHW"))
    steps = inp.preprocess().convert_element_type(ov.Type.f32)
    if spec.color == "RGB":
        steps.convert_color(ColorFormat.RGB)
    steps.scale(float(spec.scale))
    return ppp.build()


class OpenVinoBackend:
    """OpenVINO runtime; reads IR (``.xml``) or ONNX files."""

    name = "openvino"
    takes_bgr_u8 = False

    def __init__(
        self,
        model_path: Path,
        *,
        device: str = "CPU",
        cache_dir: Path | None = None,
        performance_hint: str = "LATENCY",
        inference_precision: str | None = None,
        num_threads: int | None = None,
        cpu_pinning: bool | None = None,
        num_streams: int | None = None,
        input_spec=None,
        metadata_keys: tuple[str, ...] = (),
    ) -> None:
        """``input_spec`` (an InputSpec): fold colour order, scaling and layout into the graph with
        OpenVINO's PrePostProcessor, so callers pass the letterboxed BGR uint8 image as ``[1, H, W, 3]``
        (``takes_bgr_u8``) instead of building a float tensor in Python. ``cpu_pinning`` (CPU only):
        ``False`` lets the OS move the model's threads; several one-thread compiles that run at once need
        it, as OpenVINO pins each of them to the same first core (two lanes ran at one lane's speed).
        ``num_streams`` (CPU only): parallel streams, ``num_threads`` shared among them (one compile that
        several threads call at once, each on its own stream). ``metadata_keys``: the model file's
        metadata (ONNX ``metadata_props``) to keep in ``metadata``, e.g. a text model's character table."""
        import openvino as ov

        hint = performance_hint.upper()
        if hint not in PERFORMANCE_HINTS:
            raise ValueError(
                f"performance_hint: expected one of {', '.join(PERFORMANCE_HINTS)}, got {performance_hint!r}"
            )
        openvino_numpy_ready()  # before any thread infers on this compile (see there)
        core = ov.Core()
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        self.requested_device = device
        if (device or "CPU").strip().upper() == "CPU":
            # the CPU plugin is always there; asking for ``available_devices`` would load and probe
            # the GPU and NPU plugins too (~5 MB of RSS for nothing)
            target = "CPU"
        else:
            target = choose_device(device, core.available_devices)
        config = self._config(target, hint, inference_precision, num_threads, cpu_pinning, num_streams)
        try:
            model = core.read_model(str(model_path))
            self.metadata = _framework_info(model, metadata_keys)
            if input_spec is not None and input_spec.layout == "NCHW" and input_spec.color in ("RGB", "BGR"):
                model = _with_preprocessing(model, input_spec)
                self.takes_bgr_u8 = True
            self._compiled = core.compile_model(model, target, config)
        except RuntimeError as exc:
            raise ModelPackageError(f"OpenVINO could not load {model_path} on {target}: {exc}") from exc
        self.device = self._execution_device(target)
        self._input = self._compiled.input(0)
        self._local = threading.local()
        self._queue: OpenVinoQueue | None = None
        log.info("OpenVINO compiled %s on %s (hint %s, config %s)", model_path, self.device, hint, config)

    @staticmethod
    def _config(
        target: str,
        hint: str,
        precision: str | None,
        num_threads: int | None,
        pinning: bool | None = None,
        streams: int | None = None,
    ) -> dict:
        config: dict = {"PERFORMANCE_HINT": hint}
        plain = target.split(".")[0]
        if precision is not None:
            if precision.lower() not in INFERENCE_PRECISIONS:
                raise ValueError(
                    f"inference_precision: expected one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}"
                )
            if plain in ("CPU", "GPU"):
                config["INFERENCE_PRECISION_HINT"] = INFERENCE_PRECISIONS[precision.lower()]
            else:
                log.info("inference_precision %s ignored on %s (device picks its own)", precision, target)
        elif plain == "CPU" and _isa_cap_without_bf16():
            # OpenVINO picks bf16 from what the CPU has, but oneDNN capped below AVX512_CORE_BF16 cannot run
            # it: the scene check's compile gave an empty output and every job failed. f32 instead.
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if num_threads and plain == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        if pinning is not None and plain == "CPU":
            config["ENABLE_CPU_PINNING"] = bool(pinning)
        if streams and plain == "CPU":
            config["NUM_STREAMS"] = str(int(streams))
        return config

    def _execution_device(self, target: str) -> str:
        try:
            devices = self._compiled.get_property("EXECUTION_DEVICES")
        except RuntimeError:
            return target
        return ",".join(devices) if devices else target

    @property
    def inference_precision(self) -> str | None:
        """What the compiled model actually runs in (e.g. ``bf16`` on AMX CPUs by default)."""
        try:
            value = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        except RuntimeError:
            return None
        return value.to_string() if hasattr(value, "to_string") else str(value)

    @property
    def input_shape(self) -> list[int | None]:
        return _dims(self._input.get_partial_shape())

    @property
    def output_shape(self) -> list[int | None]:
        return _dims(self._compiled.output(0).get_partial_shape())

    def _request(self):
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return request

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        request = self._request()
        try:
            request.infer({0: tensor}, share_inputs=True)
            out = np.array(request.get_output_tensor(0).data, dtype=np.float32)
        except RuntimeError as exc:
            raise InferenceError(f"OpenVINO inference failed on {self.device}: {exc}") from exc
        if out.size == 0 and tensor.size:
            raise InferenceError(
                f"OpenVINO on {self.device} returned an empty output {list(out.shape)} "
                f"(precision {self.inference_precision}): the compiled model cannot run here"
            )
        return out

    def infer_queue(self, callback: InferCallback) -> OpenVinoQueue:
        """Asynchronous requests (as many as the device's optimal number) calling ``callback`` per result.

        One queue per compiled model, made on first use and reused by every later batch (with the new
        callback). It is never freed: destroying an OpenVINO request queue or compiled model from Python
        while an OpenVINO executor thread still finishes a request needs the GIL on that thread, and
        the destructor holds it (a deadlock seen in the test suite). Made per batch, as before, every
        queue stayed alive anyway, through a reference cycle, with its requests and a decoded image per
        request (~8 MB a batch); now that cost is paid once per compiled model, and no image is kept."""
        queue = self._queue
        if queue is None:
            queue = self._queue = OpenVinoQueue(self._compiled, self.device)
            _KEPT_QUEUES.append(queue)
        queue.bind(callback)
        return queue


def _framework_info(model, keys: tuple[str, ...]) -> dict[str, str]:
    """The model file's own metadata entries ``keys`` (OpenVINO keeps ONNX metadata under "framework")."""
    return {
        k: model.get_rt_info(["framework", k]).astype(str)
        for k in keys
        if model.has_rt_info(["framework", k])
    }


InferCallback = Callable[[object, "np.ndarray | None", "Exception | None"], None]
_KEPT_QUEUES: list[OpenVinoQueue] = []  # see OpenVinoBackend.infer_queue


def _deliver(callback: InferCallback, device: str, pending: dict, request, key: int) -> None:
    userdata = pending.pop(key)
    try:
        raw = np.array(request.get_output_tensor(0).data, dtype=np.float32)
    except Exception as exc:  # reported to the caller, never raised on OpenVINO's thread
        callback(userdata, None, InferenceError(f"OpenVINO inference failed on {device}: {exc}"))
        return
    callback(userdata, raw, None)


class OpenVinoQueue:
    """``submit`` returns at once; ``callback(userdata, raw, error)`` runs on an OpenVINO thread.

    OpenVINO keeps the last userdata of each request until the request is used again, so the queue
    hands it a number and keeps the caller's userdata (a job with its decoded image) only while the
    request is in flight."""

    def __init__(self, compiled, device: str) -> None:
        import openvino as ov

        self._queue = ov.AsyncInferQueue(compiled, 0)  # 0 = the device's optimal number of requests
        self._device = device
        self._pending: dict[int, object] = {}
        self._keys = itertools.count()

    def bind(self, callback: InferCallback) -> None:
        """Results from now on go to ``callback`` (call between batches, with nothing in flight)."""
        # not a bound method: the request queue would hold this object, and this object the queue
        self._queue.set_callback(functools.partial(_deliver, callback, self._device, self._pending))

    @property
    def size(self) -> int:
        return len(self._queue)

    def submit(self, tensor: np.ndarray, userdata: object) -> None:
        """Blocks only while every request is busy."""
        key = next(self._keys)
        self._pending[key] = userdata
        try:
            self._queue.start_async({0: tensor}, key)
        except Exception:
            self._pending.pop(key, None)
            raise

    def wait_all(self) -> None:
        self._queue.wait_all()


class SyncQueue:
    """The same interface for backends without asynchronous requests: runs each submit inline."""

    size = 1

    def __init__(self, infer: Callable[[np.ndarray], np.ndarray], callback: InferCallback) -> None:
        self._infer = infer
        self._callback = callback

    def submit(self, tensor: np.ndarray, userdata: object) -> None:
        try:
            raw = self._infer(tensor)
        except Exception as exc:
            self._callback(userdata, None, exc)
            return
        self._callback(userdata, raw, None)

    def wait_all(self) -> None:
        return None


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU execution provider."""

    name = "onnx"
    takes_bgr_u8 = False

    def __init__(
        self,
        model_path: Path,
        *,
        device: str = "CPU",
        num_threads: int | None = None,
        metadata_keys: tuple[str, ...] = (),
    ) -> None:
        """``metadata_keys``: the model file's metadata (``metadata_props``) to keep in ``metadata``."""
        import onnxruntime as ort

        if device.upper() not in ("CPU", "AUTO"):
            log.warning("device %s was requested but the onnx backend runs on CPU only; using CPU", device)
        self.device = "CPU"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or usable_cores()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelPackageError(f"ONNX Runtime could not load {model_path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        self.metadata = {k: meta[k] for k in metadata_keys if k in meta}
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        self._dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        log.info("ONNX Runtime loaded %s (%s intra-op threads)", model_path, opts.intra_op_num_threads)

    @property
    def input_shape(self) -> list[int | None]:
        return [d if isinstance(d, int) else None for d in self._session.get_inputs()[0].shape]

    @property
    def output_shape(self) -> list[int | None]:
        return [d if isinstance(d, int) else None for d in self._session.get_outputs()[0].shape]

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        try:
            (out, *_) = self._session.run(None, {self._input_name: tensor.astype(self._dtype, copy=False)})
        except Exception as exc:
            raise InferenceError(f"ONNX Runtime inference failed: {exc}") from exc
        return np.asarray(out, dtype=np.float32)

    def infer_queue(self, callback: InferCallback) -> SyncQueue:
        """ONNX Runtime has no request queue here: each submit runs inline (its own threads parallelise)."""
        return SyncQueue(self.infer, callback)


def open_shipped(
    model_dir: Path, card: str, what: str, *, num_threads: int = 1, backend: str = "auto"
) -> tuple[dict, Backend]:
    """A small model that ships inside edgecv (the scene check, the face detector, the catalogue's
    embedder): ``model_dir/card`` is its JSON card, naming the model ``file`` and its ``sha256``. The file
    is checked against it (ModelPackageError naming ``what`` otherwise) and opened on OpenVINO's CPU (not
    pinned, LATENCY) where OpenVINO is installed, else ONNX Runtime, on ``num_threads`` threads.
    Returns (card, runtime)."""
    import hashlib
    import json
    from importlib.util import find_spec

    meta_path = model_dir / card
    try:
        meta = json.loads(meta_path.read_text())
        path = model_dir / meta["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelPackageError(f"{what}: cannot read {meta_path}: {exc}") from exc
    if digest != meta.get("sha256"):
        raise ModelPackageError(f"{what}: {path} does not match the sha256 in {meta_path}; reinstall edgecv")
    if backend in ("auto", "openvino") and find_spec("openvino") is not None:
        return meta, OpenVinoBackend(path, performance_hint="LATENCY", num_threads=num_threads, cpu_pinning=False)
    return meta, OnnxRuntimeBackend(path, num_threads=num_threads)
