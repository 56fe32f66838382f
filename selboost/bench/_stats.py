"""The paired test of the benchmarks: the two-sided Wilcoxon signed-rank test, exact for small samples.

SciPy's ``wilcoxon`` answers a small sample with ties by a permutation test (``2**n`` sign patterns,
about half a second a call), and the benchmarks call it once per method and cut-off. The exact null
distribution of the statistic is a count over subsets of the ranks, which doubled midranks (integers)
make a short dynamic programme.
"""

from __future__ import annotations

import numpy as np

#: up to this many nonzero differences the p-value is exact; beyond, SciPy's normal approximation
#: with its tie correction (as ``scipy.stats.wilcoxon(method="auto")``)
EXACT_UP_TO = 50


def signed_rank_p(differences):
    """Two-sided p-value of the Wilcoxon signed-rank test of paired ``differences`` (zeros dropped, as
    ``zero_method="wilcox"``; tied magnitudes get midranks); 1 when every difference is 0.

    For ``n`` <= ``EXACT_UP_TO`` nonzero differences, the exact probability under the null (each sign
    equally likely, independently) that the statistic T+ lies at least as far in either tail:
    ``min(1, 2 min(P(T+ <= t), P(T+ >= t)))``, what SciPy's exact and permutation methods give.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return 1.0
    if n > EXACT_UP_TO:
        return float(stats.wilcoxon(d, zero_method="wilcox", method="asymptotic").pvalue)
    doubled = np.rint(2.0 * stats.rankdata(np.abs(d))).astype(np.int64)  # midranks are halves
    t_plus = int(doubled[d > 0].sum())
    total = int(doubled.sum())
    ways = np.zeros(total + 1)  # ways[s]: sign patterns whose positive doubled ranks sum to s
    ways[0] = 1.0
    for rank in doubled:
        ways[rank:] = ways[rank:] + ways[: total + 1 - rank].copy()
    probability = ways / 2.0 ** n
    lower = probability[: t_plus + 1].sum()
    upper = probability[t_plus:].sum()
    return float(min(1.0, 2.0 * min(lower, upper)))
