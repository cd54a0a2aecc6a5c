"""Deterministic synthetic data generators for edgecv's detection models (numpy + OpenCV only)."""

from __future__ import annotations

DOMAINS = ("shelves", "facades", "damage", "shelves_wide")


def domain_module(name: str):
    """The generator module for ``name``: it has ``NAMES`` (fixed class list) and ``make(rng, w, h)``."""
    if name not in DOMAINS:
        raise ValueError(f"unknown domain {name!r}; choose one of {', '.join(DOMAINS)}")
    import importlib

    return importlib.import_module(f"{__name__}.{name}")
