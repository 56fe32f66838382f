"""Selective objectives on a Dask cluster, next to the same models trained on one machine.

    python examples/dask_local_cluster.py

Starts a ``distributed.LocalCluster`` (2 workers, 1 thread each, threaded workers in this process),
then on the two datasets bundled with selboost:

- regression, UCI Bike Sharing (hourly rentals, target log(1 + count)): a selective loss ten times
  as sensitive as square loss around busy hours (``Identity() + 9 * Sigmoid(center=log(1 + 500))``),
  trained with ``DaskSelectiveRegressor`` on 4 partitions through ``xgboost.dask`` and
  ``lightgbm.dask``; reported: RMSE on the test rows and RMSE on the busy test hours (count >= 500);
- ranking, LightGBM's lambdarank example data: a listwise composite-softmax loss trained with
  ``DaskSelectiveRanker``; the partitions are cut between query groups with
  ``selboost.dask.partition_by_query``; reported: NDCG@10 on the test queries.

Each line shows the Dask model and the single-machine ``SelectiveRegressor`` / ``SelectiveRanker``
with the same parameters. They are close, not identical: distributed training bins features from
per-worker quantile sketches. Takes about 10-30 s on 2 cores.
"""

from __future__ import annotations

import time

import dask.array as da
import numpy as np

import selboost
from selboost import dask as sd
from selboost.datasets import BIKE_SHARING_FEATURES, load_bike_sharing, load_bundled
from selboost.metrics import ndcg, region_rmse

N_ESTIMATORS = 50
BUSY = np.log1p(500.0)


def bike_sharing_split():
    """(X_train, y_train, X_test, y_test): the last 20 % of the hours are the test set."""
    frame = load_bike_sharing()
    X = frame[BIKE_SHARING_FEATURES].to_numpy(dtype=np.float64)
    y = np.log1p(frame["cnt"].to_numpy(dtype=np.float64))
    cut = int(0.8 * len(y))
    return X[:cut], y[:cut], X[cut:], y[cut:]


def regression(client, engine, results):
    X, y, X_test, y_test = bike_sharing_split()
    loss = selboost.SelectiveLoss(selboost.Identity() + 9 * selboost.Sigmoid(center=BUSY, scale=0.5))
    params = {"n_estimators": N_ESTIMATORS, "learning_rate": 0.1, "engine": engine}
    params.update({"max_depth": 6} if engine == "xgboost" else {"num_leaves": 31})

    # Rows shuffled before partitioning: LightGBM finds each feature's bins on one worker's local
    # rows, so every partition must look like the whole (time-ordered partitions gave unstable bins).
    order = np.random.default_rng(0).permutation(len(y))
    chunk = -(-len(y) // 4)  # 4 partitions over the 2 workers
    dX = da.from_array(X[order], chunks=(chunk, X.shape[1]))
    dy = da.from_array(y[order], chunks=chunk)
    start = time.perf_counter()
    on_dask = sd.DaskSelectiveRegressor(loss, client=client, **params).fit(dX, dy)
    dask_pred = on_dask.predict(da.from_array(X_test, chunks=(2000, X.shape[1]))).compute()
    dask_seconds = time.perf_counter() - start

    start = time.perf_counter()
    single_pred = selboost.SelectiveRegressor(loss, n_jobs=1, **params).fit(X[order], y[order]).predict(X_test)
    single_seconds = time.perf_counter() - start

    rmse = lambda p: float(np.sqrt(np.mean((p - y_test) ** 2)))  # noqa: E731
    busy = lambda p: region_rmse(y_test, p, BUSY, np.inf)  # noqa: E731
    results[f"bike {engine} rmse"] = (rmse(dask_pred), rmse(single_pred))
    results[f"bike {engine} rmse busy"] = (busy(dask_pred), busy(single_pred))
    print(f"  bike sharing, {engine:8s}  dask {dask_seconds:5.1f} s, "
          f"single machine (1 thread) {single_seconds:5.1f} s")


def ranking(client, engine, results):
    fold = load_bundled()[0]
    # queries shuffled before partitioning, for the same reason as the rows in regression()
    train = fold.train.subset(np.random.default_rng(0).permutation(fold.train.n_queries))
    test = fold.test
    loss = selboost.ListwiseLoss(selboost.Identity() + selboost.Sigmoid(center=1.0, scale=0.5))
    params = {"n_estimators": N_ESTIMATORS, "learning_rate": 0.1, "engine": engine}
    params.update({"max_depth": 6} if engine == "xgboost" else {"num_leaves": 31})

    qid = np.repeat(np.arange(train.n_queries), train.group)
    chunk = -(-len(qid) // 4)
    # equal-size chunks cut through query groups; partition_by_query moves each cut to a group end
    dqid, dX, dy = sd.partition_by_query(
        da.from_array(qid, chunks=chunk),
        da.from_array(train.X, chunks=(chunk, train.X.shape[1])),
        da.from_array(train.y, chunks=chunk),
    )
    start = time.perf_counter()
    on_dask = sd.DaskSelectiveRanker(loss, client=client, **params).fit(dX, dy, qid=dqid)
    dask_scores = on_dask.predict(da.from_array(test.X, chunks=(500, test.X.shape[1]))).compute()
    dask_seconds = time.perf_counter() - start

    start = time.perf_counter()
    single = selboost.SelectiveRanker(loss, n_jobs=1, **params).fit(train.X, train.y, group=train.group)
    single_scores = single.predict(test.X)
    single_seconds = time.perf_counter() - start

    results[f"lgb-rank {engine} ndcg@10"] = (ndcg(test.y, dask_scores, test.group, k=10),
                                              ndcg(test.y, single_scores, test.group, k=10))
    print(f"  lgb-rank,     {engine:8s}  dask {dask_seconds:5.1f} s, "
          f"single machine (1 thread) {single_seconds:5.1f} s")


def main(client=None):
    """Train everything on ``client`` (a new 2-worker LocalCluster when None); returns
    {metric: (dask value, single-machine value)}."""
    cluster = None
    if client is None:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
        client = Client(cluster)
    results = {}
    try:
        print("training (2 Dask workers, 1 thread each):")
        for engine in ("xgboost", "lightgbm"):
            regression(client, engine, results)
            ranking(client, engine, results)
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    print(f"\n{'metric (test set)':32s} {'dask':>8s} {'single machine':>15s}")
    for name, (on_dask, single) in results.items():
        print(f"{name:32s} {on_dask:8.4f} {single:15.4f}")
    return results


if __name__ == "__main__":
    main()
