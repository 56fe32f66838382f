"""SelectiveRanker on query groups: the LightGBM lambdarank sample (or synthetic queries).

Rows of one query are consecutive; give the group sizes (``group=``) or sorted per-row query ids
(``qid=``). ``score`` is the mean NDCG@k.
"""

from pathlib import Path

import numpy as np

import selboost


def load():
    """The LightGBM lambdarank sample bundled with selboost (or its shared original), else synthetic."""
    from sklearn.datasets import load_svmlight_file

    bundled = Path(selboost.__file__).parent / "data"
    shared = Path("/work/shared/data/lightgbm-lambdarank")
    for data, query in ((bundled / "lgb-rank.{}.gz", bundled / "lgb-rank.{}.query"),
                        (shared / "rank.{}", shared / "rank.{}.query")):
        files = [(Path(str(data).format(s)), Path(str(query).format(s))) for s in ("train", "test")]
        if all(d.exists() and q.exists() for d, q in files):
            out = []
            for d, q in files:
                X, y = load_svmlight_file(str(d), n_features=300)
                out.append((X.toarray(), y, np.loadtxt(q, dtype=np.int64)))
            return f"LightGBM lambdarank sample ({d.parent})", out
    rng = np.random.default_rng(0)
    out = []
    for n_queries in (200, 50):
        sizes = rng.integers(5, 30, size=n_queries)
        X = rng.normal(size=(sizes.sum(), 20))
        y = np.clip(np.round(X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=len(X)) + 1), 0, 4)
        out.append((X, y, sizes))
    return "synthetic queries", out


name, ((X, y, group), (X_test, y_test, group_test)) = load()
qid = np.repeat(np.arange(group.size), group)  # per-row query ids, sorted
print(f"data: {name}, {group.size} training queries, {group_test.size} test queries")
for backend in ("xgboost", "lightgbm"):
    ranker = selboost.SelectiveRanker(backend=backend, n_estimators=100, learning_rate=0.1, max_depth=6, n_jobs=1)
    ranker.fit(X, y, qid=qid, eval_set=[(X_test, y_test)], eval_group=[group_test])
    print(f"{backend:8s} listwise NDCG@10 test {ranker.score(X_test, y_test, group=group_test, k=10):.4f} "
          f"(untrained {selboost.metrics.ndcg(y_test, np.zeros(len(y_test)), group_test, k=10):.4f})")
