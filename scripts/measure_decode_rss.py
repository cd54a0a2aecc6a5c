"""Peak RSS of one worker job on a 7000×7000 image (49 MP, under the 50 MP pixel guard):

    python scripts/measure_decode_rss.py {jpeg,png} {reduced,full} [MODEL]

Run it once per case (peak RSS only grows in a process). The image is made once by a child process
and cached in the temp dir, so its construction does not count; ``full`` turns the reduced decode off
(the decode as it was). MODEL defaults to the shipped building-inspection-v1 (a pipeline that reads no
pixels); shelf-detection-v2 re-decodes the full image for its price-tag reader.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edgecv import imageio
from edgecv.config import load_config
from edgecv.ingest import ingest_bytes
from edgecv.store import Store
from edgecv.work.worker import Worker


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(kind: str, mode: str, model: str = "building-inspection-v1") -> None:
    if mode == "full":
        imageio.REDUCE_ABOVE_PIXELS = 10**12  # the decode as it was: always full size
    source = Path(tempfile.gettempdir()) / f"edgecv-rss-7000.{kind}"
    if not source.exists():
        subprocess.run([sys.executable, __file__, "make", str(source)], check=True)
    data = source.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            overrides={"data_dir": Path(tmp), "default_model": model, "api.enabled": False}, environ={}
        )
        store = Store(config.db_path)
        ingest_bytes(store, config, data, name=f"big.{kind}", model=model)
        worker = Worker(store, config)
        worker.detectors.get(model)  # model loaded before the baseline
        del data
        before = peak_mb()
        job = worker.run_once()
        print(
            f"{kind} {mode} {model}: peak RSS {before:.0f} MB before the job, {peak_mb():.0f} MB after ({job.status})"
        )


def make(path: str) -> None:
    image = np.full((7000, 7000, 3), 40, np.uint8)
    image[2000:4000, 1500:5000] = (0, 0, 255)
    cv2.imwrite(path, image)


if __name__ == "__main__":
    make(sys.argv[2]) if sys.argv[1] == "make" else main(*sys.argv[1:])
