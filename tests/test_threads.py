"""Threads carry their names to the OS, so `top -H` on an edge box tells the agent's threads apart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edgecv.threads import name_os_thread, start_thread

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl names are Linux's")


def _comm() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


@linux_only
def test_start_thread_names_the_os_thread():
    seen = []
    start_thread("edgecv-test-thread-long-name", lambda: seen.append(_comm())).join(5)
    assert seen == ["edgecv-test-thr"]  # the kernel keeps 15 characters


@linux_only
def test_name_os_thread_defaults_to_the_python_name():
    seen = []

    def run():
        name_os_thread()
        seen.append(_comm())

    t = threading.Thread(target=run, name="edgecv-decode_0")
    t.start()
    t.join(5)
    assert seen == ["edgecv-decode_0"]


@pytest.mark.process
def test_opening_detectors_keeps_numpy_blas_on_one_thread():
    """OpenVINO owns the cores; numpy's small products must not wake OpenBLAS threads that spin on them."""
    code = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "blas = lambda: [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "before = blas()\n"
        "from edgecv.config import Config\n"
        "from edgecv.work.pool import DetectorPool\n"
        "DetectorPool(Config())\n"
        "print(before, blas())\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after = out.stdout.strip().split("] [")
    assert before == "[2" and after == "1]", out.stdout


def test_malloc_arenas_are_capped_unless_the_operator_chose(monkeypatch):
    import sys

    from edgecv.threads import limit_malloc_arenas

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the operator's value stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is True
