"""What keeps the agent's memory down: no device probing on CPU, infer queues that are freed."""

from __future__ import annotations

import weakref

import numpy as np
import openvino as ov
import pytest
from runtime_fixtures import make_package, red_rectangle_image

from edgecv.runtime.detector import Detector
from edgecv.runtime.package import load_package


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


def test_infer_queue_is_freed_with_its_images(package):
    det = Detector.open(package, backend="openvino", performance_hint="THROUGHPUT")
    tensor, _ = det.preprocess(red_rectangle_image(400, 200, (50, 60, 150, 120)))

    class Userdata:  # what the backlog passes: a job with its decoded image
        image = np.zeros((720, 1280, 3), np.uint8)

    results, refs = [], []
    queue = det.infer_queue(lambda userdata, raw, error: results.append((raw, error)))
    for _ in range(max(2, queue.size) * 2):
        data = Userdata()
        refs.append(weakref.ref(data))
        queue.submit(tensor, data)
        del data
    queue.wait_all()
    assert len(results) == len(refs) and all(raw is not None and err is None for raw, err in results)
    queue_ref = weakref.ref(queue)
    del queue
    assert queue_ref() is None  # no reference cycle through OpenVINO: freed at once, no GC needed
    assert all(ref() is None for ref in refs)
