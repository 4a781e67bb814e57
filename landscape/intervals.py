"""The one convention for every printed "±": the half-width of a Student-t confidence interval.

For n independent samples with mean m and standard error s = std(ddof=1)/√n, the interval is
m ± t_{(1+c)/2, n-1} · s. With 10 samples the 95% quantile is 2.26, not 1.96 or 1: printing
the standard error alone as "±" would understate the uncertainty by more than half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """mean, standard error and the ``confidence`` t-interval [low, high] of n samples."""

    mean: float
    stderr: float
    low: float
    high: float
    confidence: float
    n: int

    @property
    def half_width(self) -> float:
        return self.high - self.mean


def t_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The Student-t interval of the mean of ``samples`` (infinite for a single sample)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise ValueError("no samples")
    mean = float(np.mean(x))
    if n == 1:
        return Interval(mean, math.inf, -math.inf, math.inf, confidence, 1)
    se = float(np.std(x, ddof=1) / math.sqrt(n))
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Interval(mean, se, mean - half, mean + half, confidence, n)


def pm(half_width: float, confidence: float = CONFIDENCE, digits: int = 2) -> str:
    """'± 0.04 (95% CI)': how every confidence half-width is printed."""
    return f"± {half_width:.{digits}g} ({100 * confidence:g}% CI)"
