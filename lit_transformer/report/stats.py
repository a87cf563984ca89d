"""Noise-aware verdicts and rank correlations for the Table 3 replica (pure functions).

A row's change vs base is judged from the per-seed paired differences (row seed s minus base
seed s), not from the difference of two means: seeds share the data order and initialisation
stream, so pairing removes the variation the row and the base have in common.

Student's t distribution and Spearman's ρ are computed here in plain Python (math only), so
that the report needs no SciPy; :func:`spearman` uses ``scipy.stats.spearmanr`` when SciPy is
installed, and the tests check that both give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95

# The paper prints dev PPL to 2 decimals and BLEU to 1 (Table 3).
PAPER_DECIMALS = {"ppl": 2, "bleu": 1}

AGREES = "agrees"
CONTRADICTS = "contradicts"
INCONCLUSIVE = "inconclusive"
NO_CHANGE = "paper: no change"
VERDICTS = (AGREES, CONTRADICTS, INCONCLUSIVE, NO_CHANGE)


# -- Student's t ---------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, as in Numerical
    Recipes ``betacf``); converges quickly for ``x < (a + 1) / (a + b + 2)``."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for num in (even, odd):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided tail probability of Student's t with ``df`` degrees of freedom:
    P(|T| ≥ |t|) = I_{df / (df + t²)}(df / 2, 1 / 2)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t (``q`` in (0.5, 1)), by bisection on
    :func:`t_two_sided_p`: the t > 0 with P(|T| ≥ t) = 2 (1 − q)."""
    if not 0.5 < q < 1.0:
        raise ValueError(f"q must be in (0.5, 1), got {q}")
    target = 2.0 * (1.0 - q)
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


# -- paired differences and verdicts -------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """The mean of n paired differences and its two-sided t confidence interval (``low`` and
    ``high`` are None for n < 2: one seed gives no estimate of the spread)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None


def paired_differences(row: Mapping[int, float], base: Mapping[int, float]) -> list[float]:
    """d_s = row_s − base_s for every seed s present in both (in seed order)."""
    return [row[s] - base[s] for s in sorted(set(row) & set(base))]


def mean_interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean d̄ and t interval d̄ ± t_{(1+c)/2, n−1} · s / √n of the differences d_1..d_n, where
    s² = Σ (d_i − d̄)² / (n − 1).

    Args:
        diffs (Sequence[float]): the paired differences (see :func:`paired_differences`).
        confidence (float): the two-sided level c (default 0.95).

    Returns:
        Interval: with n = 1 no interval (``low = high = None``); with n = 0 nothing at all.
    """
    n = len(diffs)
    if n == 0:
        return Interval(0, None, None, None)
    mean = sum(diffs) / n
    if n < 2:
        return Interval(1, mean, None, None)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(n, mean, mean - half, mean + half)


def paper_unchanged(paper_delta: float, decimals: int) -> bool:
    """Whether the paper's Δ is below its printed rounding: |Δ| < ½ · 10^−decimals. Both of the
    paper's figures are printed to ``decimals`` places, so their difference is a multiple of
    10^−decimals and this is Δ = 0 at that rounding (the test tolerates float error)."""
    return abs(paper_delta) < 0.5 * 10.0**-decimals


def verdict(interval: Interval, paper_delta: float | None, decimals: int) -> str:
    """Our change vs base against the paper's, as a direction of change (a rise in PPL agrees
    with a paper's rise in PPL; "better" plays no part):

    * ``"paper: no change"``: the paper's Δ is 0 at its printed precision (:func:`paper_unchanged`);
    * ``"agrees"``: the interval excludes 0 on the paper's side (low > 0 for a paper Δ > 0,
      high < 0 for a paper Δ < 0);
    * ``"contradicts"``: the interval excludes 0 on the other side;
    * ``"inconclusive"``: the interval contains 0, or n = 1 (no interval).

    Args:
        interval (Interval): our paired Δ (row − base) and its interval (:func:`mean_interval`).
        paper_delta (float, optional): the paper's row − base.
        decimals (int): how many decimals the paper prints the metric to
            (:data:`PAPER_DECIMALS`).

    Returns:
        str: one of :data:`VERDICTS`, or ``""`` when there is nothing to judge (no paired
        seeds, or no paper figure).
    """
    if paper_delta is None or math.isnan(paper_delta) or interval.n == 0:
        return ""
    if paper_unchanged(paper_delta, decimals):
        return NO_CHANGE
    if interval.low is None or interval.high is None:
        return INCONCLUSIVE
    if interval.low > 0:
        side = 1
    elif interval.high < 0:
        side = -1
    else:
        return INCONCLUSIVE
    return AGREES if side == (1 if paper_delta > 0 else -1) else CONTRADICTS


# -- Spearman's rank correlation -----------------------------------------------------------------
def ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return out


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None  # a constant variable: no correlation defined
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def spearman_by_hand(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman's ρ: Pearson's r of the ranks (average ranks for ties), and its two-sided
    p-value from t = ρ √((n − 2) / (1 − ρ²)) with n − 2 degrees of freedom (as SciPy's
    ``spearmanr``).

    Args:
        x, y (Sequence[float]): paired observations (say our row values and the paper's).

    Returns:
        tuple: (ρ, p); ρ is None for n < 2 or a constant variable, p is None for n < 3.
    """
    n = len(x)
    if n != len(y):
        raise ValueError("x and y differ in length")
    if n < 2:
        return None, None
    rho = _pearson(ranks(x), ranks(y))
    if rho is None or n < 3:
        return rho, None
    if abs(rho) == 1.0:
        return rho, 0.0
    t = rho * math.sqrt((n - 2) / (1.0 - rho * rho))
    return rho, t_two_sided_p(t, n - 2)


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman's ρ and its p-value (see :func:`spearman_by_hand`), by ``scipy.stats.spearmanr``
    when SciPy is installed and the case is defined (n ≥ 3, neither variable constant)."""
    rho, p = spearman_by_hand(x, y)
    if rho is None or p is None:
        return rho, p
    try:
        from scipy.stats import spearmanr
    except ImportError:
        return rho, p
    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def scipy_available() -> bool:
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        return False
    return True
