"""What keeps the agent's memory down: no web stack without the API, no device probing on CPU, one infer
queue per compiled model, THROUGHPUT or lane compiles only for a real backlog."""

from __future__ import annotations

import subprocess
import sys
import weakref
from dataclasses import replace

import numpy as np
import openvino as ov
import pytest
from helpers.runtime import make_package, red_rectangle_image

from edgecv import agent as agent_module
from edgecv.runtime.detector import Detector
from edgecv.runtime.package import load_package
from edgecv.work.pool import DetectorPool


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return load_package(make_package(tmp_path_factory.mktemp("models"), with_ir=True))


def test_cpu_does_not_probe_other_devices(package, monkeypatch):
    class NoProbing(ov.Core):
        @property
        def available_devices(self):
            raise AssertionError("plain CPU must not enumerate (and load) the GPU/NPU plugins")

    monkeypatch.setattr(ov, "Core", NoProbing)
    assert Detector.open(package, backend="openvino", device="cpu").device == "CPU"


def test_infer_queue_is_reused_and_keeps_no_images(package):
    det = Detector.open(package, backend="openvino", performance_hint="THROUGHPUT")
    tensor, _ = det.preprocess(red_rectangle_image(400, 200, (50, 60, 150, 120)))

    class Userdata:  # what the backlog passes: a job with its decoded image
        image = np.zeros((720, 1280, 3), np.uint8)

    first, second, refs = [], [], []
    queue = det.infer_queue(lambda userdata, raw, error: first.append((raw, error)))
    for _ in range(max(2, queue.size) * 2):
        data = Userdata()
        refs.append(weakref.ref(data))
        queue.submit(tensor, data)
        del data
    queue.wait_all()
    assert len(first) == len(refs) and all(raw is not None and err is None for raw, err in first)
    del first[:]
    assert all(ref() is None for ref in refs)  # no image outlives its inference
    again = det.infer_queue(lambda userdata, raw, error: second.append(userdata))
    assert again is queue  # one queue per compiled model, not one (never freed) per batch
    again.submit(tensor, "next batch")
    again.wait_all()
    assert second == ["next batch"] and not first


@pytest.mark.process
def test_metrics_without_the_web_stack():
    code = (
        "import sys\n"
        "from edgecv.api import Metrics\n"
        "heavy = [m for m in ('fastapi', 'starlette', 'uvicorn', 'pydantic') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from edgecv.api import make_server, create_app, ApiServer\n"
        "assert 'fastapi' in sys.modules and 'uvicorn' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_api_package_names_resolve():
    import edgecv.api as api

    assert api.Metrics.__module__ == "edgecv.api.metrics"
    assert api.make_server.__module__ == "edgecv.api.server"
    assert set(api.__all__) <= set(dir(api))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        api.nope  # noqa: B018


def test_throughput_compile_only_for_a_real_backlog(config):
    backlog = {"rect": 1}
    pool = DetectorPool(config, backlog_of=lambda name: backlog[name])
    latency = pool.get("rect")
    assert pool.get("rect", hint="THROUGHPUT") is latency  # a few jobs: the loaded LATENCY compile
    assert list(pool.loaded()) == [("rect", "LATENCY")]
    backlog["rect"] = config.backlog_batch
    throughput = pool.get("rect", hint="THROUGHPUT")
    assert throughput is not latency
    assert list(pool.loaded()) == [("rect", "LATENCY"), ("rect", "THROUGHPUT")]
    backlog["rect"] = 0
    assert pool.get("rect", hint="THROUGHPUT") is throughput  # once compiled, kept


def test_lane_compiles_only_for_a_real_backlog_one_thread_unpinned(config):
    backlog = {"rect": 1}
    pool = DetectorPool(config, backlog_of=lambda name: backlog[name])
    latency = pool.get("rect")
    assert pool.lanes("rect", 2) == [latency]  # a few jobs: one lane on the loaded LATENCY compile
    backlog["rect"] = config.backlog_batch
    lanes = pool.lanes("rect", 2)
    assert len(lanes) == 2 and latency not in lanes and lanes[0] is not lanes[1]
    assert list(pool.loaded()) == [("rect", "LATENCY"), ("rect", "LANE-0"), ("rect", "LANE-1")]
    compiled = lanes[0].runtime._compiled
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert compiled.get_property("ENABLE_CPU_PINNING") is False  # lanes must not share the first core
    backlog["rect"] = 0
    assert pool.lanes("rect", 2) == lanes  # once compiled, kept


def test_load_and_pools_without_a_backlog_count_compile_as_asked(config):
    pool = DetectorPool(config, backlog_of=lambda name: 0)
    pool.get("rect")
    pool.load("rect", hint="THROUGHPUT")  # preloading: exactly this compile
    assert list(pool.loaded()) == [("rect", "LATENCY"), ("rect", "THROUGHPUT")]
    plain = DetectorPool(config)
    plain.get("rect")
    assert plain.get("rect", hint="THROUGHPUT") is not plain.get("rect")
    failing = DetectorPool(config, backlog_of=lambda name: 1 / 0)
    failing.get("rect")
    assert failing.get("rect", hint="THROUGHPUT") is not failing.get("rect")


def test_agent_counts_a_models_backlog(store, config):
    from helpers.images import distinct_jpeg

    from edgecv.ingest import ingest_bytes

    cfg = replace(config, backlog_batch=4)
    runner = agent_module.Agent(cfg)
    runner.store = store
    for i in range(6):
        ingest_bytes(store, cfg, distinct_jpeg(i), name=f"{i}.jpg", model="rect")
    ingest_bytes(store, cfg, distinct_jpeg(9), name="other.jpg", model="other")
    assert runner._model_backlog("rect") == 4  # counted up to backlog_batch
    assert runner._model_backlog("other") == 1
    assert runner._model_backlog("none") == 0
