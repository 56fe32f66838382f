"""NDCG per query, with ties averaged, and the two conventions for queries with no relevant document.

    DCG@k = sum_{rank i <= k} (2^{r_i} - 1) / log2(i + 1),   NDCG@k = DCG@k / ideal DCG@k

Ties in the scores are averaged over every order of the tied items (McSherry & Najork, 2008), which is
what ``sklearn.metrics.ndcg_score`` does (the tests check the two agree when its ``y_true`` is given the
gains ``2^r - 1``). A query whose documents all have relevance 0 has no ideal DCG: ``ndcg_per_query``
returns NaN for it, and ``mean_ndcg`` either counts it as 1 (LightGBM's ``ndcg`` metric, and
XGBoost's by default) or leaves it out (the mean over the queries that have a relevant document).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ndcg_per_query", "mean_ndcg", "CONVENTIONS"]

#: convention name -> what a query with no relevant document counts as
CONVENTIONS = {
    "excluded": "queries with no relevant document left out (mean over the others)",
    "as-one": "queries with no relevant document count as 1 (LightGBM's ndcg metric)",
}


def _tie_averaged_dcg(gain, score, k):
    order = np.argsort(-score, kind="stable")
    sorted_score = score[order]
    sorted_gain = gain[order]
    n = score.size
    discount = np.zeros(n)
    top = min(k, n)
    discount[:top] = 1.0 / np.log2(np.arange(2, top + 2))
    # boundaries of runs of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    run_gain = np.add.reduceat(sorted_gain, starts) / np.diff(np.r_[starts, n])
    run_discount = np.add.reduceat(discount, starts)
    return float(np.dot(run_gain, run_discount))


def ndcg_per_query(y, score, group, k):
    """NDCG@k of each query (NaN where every relevance is 0); gains 2^r - 1, ties averaged.

    ``y`` relevance (n,), ``score`` predictions (n,), ``group`` sizes of consecutive queries.
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    if y.shape != score.shape or y.ndim != 1:
        raise ValueError(f"y and score must be 1-d of the same length, got {y.shape} and {score.shape}")
    if int(group.sum()) != y.size:
        raise ValueError(f"group sizes sum to {int(group.sum())}, but there are {y.size} rows")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    gain = np.expm1(y * np.log(2.0))
    out = np.full(group.size, np.nan)
    start = 0
    for q, size in enumerate(group):
        stop = start + int(size)
        g = gain[start:stop]
        if g.max() > 0.0:
            ideal = np.sort(g)[::-1][:k]
            best = float(np.dot(ideal, 1.0 / np.log2(np.arange(2, ideal.size + 2))))
            out[q] = _tie_averaged_dcg(g, score[start:stop], k) / best
        start = stop
    return out


def mean_ndcg(per_query, convention="excluded"):
    """Mean of per-query NDCG under a convention for NaN (no relevant document): see ``CONVENTIONS``."""
    per_query = np.asarray(per_query, dtype=np.float64)
    if convention == "excluded":
        kept = per_query[~np.isnan(per_query)]
        return float(kept.mean()) if kept.size else float("nan")
    if convention == "as-one":
        return float(np.where(np.isnan(per_query), 1.0, per_query).mean())
    raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
