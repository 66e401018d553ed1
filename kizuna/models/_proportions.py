"""Intervals for proportions: one rate (Wilson's score interval) and the difference of two independent
rates (Newcombe's hybrid score interval).

Shared by what measures a rate among customers: the scenarios' uplift (treated vs control), a call
script's kept rate, a decile's churn rate, two call lists' precision. Newcombe's interval is built
from the two Wilson intervals; it keeps its coverage near the nominal level with small groups and
rare outcomes, where the textbook Wald interval is too narrow, and it is never undefined at 0 % or 100 %.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["newcombe_interval", "wilson_interval"]

_NORMAL = NormalDist()


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence}.")
    return _NORMAL.inv_cdf(1 - (1 - confidence) / 2)


def _check_counts(x: int, n: int) -> None:
    if n < 0 or x < 0 or x > n:
        raise ValueError(f"counts must satisfy 0 <= converted <= customers, not {x} of {n}.")


def wilson_interval(x: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion x / n (Newcombe 1998 method 3); None when n is 0."""
    _check_counts(x, n)
    if n == 0:
        return None
    z = _z(confidence)
    p = x / n
    centre = 2 * n * p + z * z
    spread = z * math.sqrt(z * z + 4 * n * p * (1 - p))
    denominator = 2 * (n + z * z)
    # exact ends at 0 and n, which rounding would otherwise move by 1e-17
    low = 0.0 if x == 0 else (centre - spread) / denominator
    high = 1.0 if x == n else (centre + spread) / denominator
    return low, high


def newcombe_interval(
    x_treated: int, n_treated: int, x_control: int, n_control: int, confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """Difference of two independent proportions with Newcombe's hybrid score interval.

    Newcombe, R. G. (1998). Interval estimation for the difference between independent
    proportions: comparison of eleven methods. Statistics in Medicine 17, 873–890, method 10:
    with (l1, u1) and (l2, u2) the Wilson intervals of p1 = x_treated / n_treated and
    p2 = x_control / n_control, the interval of d = p1 − p2 is
    (d − √((p1 − l1)² + (u2 − p2)²), d + √((u1 − p1)² + (p2 − l2)²)).

    Returns
    -------
    tuple or None
        (difference, low, high), treated minus control; None when a group is empty.

    Examples
    --------
    >>> [round(v, 4) for v in newcombe_interval(56, 70, 48, 80)]  # Newcombe 1998, Table II (a)
    [0.2, 0.0524, 0.3339]
    """
    treated = wilson_interval(x_treated, n_treated, confidence)
    control = wilson_interval(x_control, n_control, confidence)
    if treated is None or control is None:
        return None
    p1, p2 = x_treated / n_treated, x_control / n_control
    (l1, u1), (l2, u2) = treated, control
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)
