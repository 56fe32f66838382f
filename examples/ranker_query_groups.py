"""SelectiveRanker on query groups: the LightGBM lambdarank sample bundled with selboost.

Rows of one query are consecutive; give the group sizes (``group=``) or sorted per-row query ids
(``qid=``). ``score`` is the mean NDCG@k.
"""

import numpy as np

import selboost
from selboost.datasets import load_bundled_sets

data = load_bundled_sets()  # the LightGBM lambdarank sample bundled with selboost
(X, y, group), (X_test, y_test, group_test) = ((s.X, s.y, s.group) for s in (data["train"], data["test"]))
qid = np.repeat(np.arange(group.size), group)  # per-row query ids, sorted
print(f"data: LightGBM lambdarank sample, {group.size} training queries, {group_test.size} test queries")
for engine in ("xgboost", "lightgbm"):
    ranker = selboost.SelectiveRanker(engine=engine, n_estimators=100, learning_rate=0.1, max_depth=6, n_jobs=1)
    ranker.fit(X, y, qid=qid, eval_set=[(X_test, y_test)], eval_group=[group_test])
    print(f"{engine:8s} listwise NDCG@10 test {ranker.score(X_test, y_test, group=group_test, k=10):.4f} "
          f"(untrained {selboost.metrics.ndcg(y_test, np.zeros(len(y_test)), group_test, k=10):.4f})")
