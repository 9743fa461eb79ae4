"""Statistics of the study: bootstrap confidence intervals, correlations, rank agreement, paired tests.

Pure functions on NumPy arrays. Bootstrap intervals are percentile intervals over ``resamples``
resamples drawn with a fixed seed, so every table is reproducible to the last digit.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

RESAMPLES = 1000
LEVEL = 0.95
CORRELATIONS = ("spearman", "pearson")


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices drawn with replacement from range(n)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(estimates: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite ``estimates`` (NaN when none is finite)."""
    finite = estimates[np.isfinite(estimates)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def mean_with_ci(values: np.ndarray, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, ci_low, ci_high, n) of the finite entries of ``values`` (n,): bootstrap percentile
    interval of the mean. With no finite entry all three are NaN; with one, the interval is the point."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    means = values[_resample_indices(n, resamples, seed)].mean(1)
    low, high = _interval(means, level)
    return float(values.mean()), low, high, n


def _rows_correlation(x: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """Correlation of each row pair of ``x``, ``y`` (B, n): Pearson, or Spearman (Pearson of ranks).
    Rows where either side is constant give NaN."""
    if kind == "spearman":
        x, y = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    elif kind != "pearson":
        raise ValueError(f"kind must be one of {CORRELATIONS}, got '{kind}'")
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    denominator = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(1) / denominator, np.nan)


def correlation_with_ci(x: np.ndarray, y: np.ndarray, kind: str = "spearman", resamples: int = RESAMPLES,
                        level: float = LEVEL, seed: int = 0) -> dict[str, float]:
    """Correlation of paired samples ``x``, ``y`` (n,) over the pairs where both are finite:
    {r, ci_low, ci_high, p_value, n}. The interval resamples pairs (resamples where either side is
    constant are dropped); p_value is SciPy's test of r = 0. Fewer than 3 pairs or a constant side
    give r = NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    result = {"r": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan"), "n": n}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return result
    r = float(_rows_correlation(x[None], y[None], kind)[0])
    test = stats.spearmanr(x, y) if kind == "spearman" else stats.pearsonr(x, y)
    index = _resample_indices(n, resamples, seed)
    low, high = _interval(_rows_correlation(x[index], y[index], kind), level)
    result.update(r=r, ci_low=low, ci_high=high, p_value=float(test.pvalue))
    return result


def kendalls_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance of ``ranks`` (m raters, n items), each row a ranking of
    the items (ties as average ranks), with the tie correction: 1 = the raters agree exactly, 0 = no
    agreement. NaN with fewer than 2 items or raters."""
    ranks = np.asarray(ranks, dtype=float)
    m, n = ranks.shape
    if m < 2 or n < 2:
        return float("nan")
    totals = ranks.sum(0)
    s = ((totals - totals.mean()) ** 2).sum()
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += (counts ** 3 - counts).sum()
    denominator = m ** 2 * (n ** 3 - n) - m * ties
    return float(12 * s / denominator) if denominator > 0 else float("nan")


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Wilcoxon signed-rank test of paired samples ``a``, ``b`` (n,) over pairs where both are finite:
    {mean_a, mean_b, mean_difference (b - a), statistic, p_value, n}. All-equal pairs give p = 1;
    no pair gives NaN."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    result = {"mean_a": float("nan"), "mean_b": float("nan"), "mean_difference": float("nan"),
              "statistic": float("nan"), "p_value": float("nan"), "n": n}
    if n == 0:
        return result
    result.update(mean_a=float(a.mean()), mean_b=float(b.mean()), mean_difference=float((b - a).mean()))
    if np.all(a == b):
        result.update(statistic=0.0, p_value=1.0)
    else:
        test = stats.wilcoxon(a, b)
        result.update(statistic=float(test.statistic), p_value=float(test.pvalue))
    return result
