"""Latency statistics: tail percentiles and ratios with their round-to-round spread.

A single mean hides the tail that users feel (p99) and a single ratio hides how much the
machine drifted between runs, so everything here returns percentiles or a range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """Percentiles (numpy's linear interpolation), mean, population std, min and max.

    Values are plain floats so the dict goes straight into JSON reports.
    """
    if len(samples_ms) == 0:
        raise ValueError("summarize needs at least one sample")
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": len(arr),
    }


def ratio_with_spread(a_runs: Sequence[float], b_runs: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a/b over rounds paired by index.

    Pairing by round matters: rounds run A B A B, so a and b of one round saw the same machine
    load, and their ratio cancels the drift that separate medians of a and b would keep.
    """
    if len(a_runs) != len(b_runs):
        raise ValueError(f"paired rounds differ in length: {len(a_runs)} vs {len(b_runs)}")
    if len(a_runs) == 0:
        raise ValueError("ratio_with_spread needs at least one paired round")
    a = np.asarray(a_runs, dtype=np.float64)
    b = np.asarray(b_runs, dtype=np.float64)
    if np.any(b <= 0):
        raise ValueError("denominator runs must be positive")
    ratios = a / b
    return {
        "median": float(np.median(ratios)),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
        "n": len(ratios),
    }
