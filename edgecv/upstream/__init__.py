"""Upstream sync: pushing results and images from the device to the tenant API.

Not to be confused with the repository's top-level ``sync/`` folder, which holds the *server* side
(the OpenAPI contract and the reference tenant API, ``python -m sync.server``). This package is the
device side and is named ``upstream`` so that neither name shadows nor suggests the other.

- :mod:`edgecv.upstream.wire` — canonical JSON, encoded items, batching, ``Retry-After``;
- :mod:`edgecv.upstream.transport` — the keep-alive HTTP connection;
- :mod:`edgecv.upstream.relay` — the outbox relay (:class:`~edgecv.upstream.relay.Relay`);
- :mod:`edgecv.upstream.summary` — one-shot ``edgecv sync`` and ``edgecv sync --status``;
- :mod:`edgecv.upstream.budget` — the one disk-budget owner shared by ingest and the relay;
- :mod:`edgecv.upstream.images` — upload variants and downscaling of spooled images (OpenCV).
"""
