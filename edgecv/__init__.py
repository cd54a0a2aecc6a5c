"""edgecv: the CV Jobs API on edge hardware."""

__version__ = "0.1.0"
