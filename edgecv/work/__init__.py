"""Running jobs: the worker's loop, the backlog path and the detectors they use.

- ``worker.py``: ``Worker`` (claim → decode → infer → pipeline → complete/fail) and ``WorkSignal``.
- ``backlog.py``: many queued jobs at once, in lanes (CPU) or on OpenVINO's request queue.
- ``steps.py``: ``JobSteps``, what the backlog may ask of the worker, and ``Loaded``, a claimed job
  with its image and detector.
- ``pool.py``: ``DetectorPool``, each model's compiles, opened on first use and kept.
"""
