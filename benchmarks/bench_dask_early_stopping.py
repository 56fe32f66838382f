"""Dask early stopping: wall time at 50 and 200 rounds, to show that its cost grows linearly in rounds.

A 2-process ``distributed.LocalCluster`` (1 thread each); ``DaskSelectiveRegressor`` with an eval set
of 4 partitions and ``early_stopping_rounds`` larger than the rounds (so every round is trained and
evaluated on the workers). Per engine it prints the fit time at each round count and the time per round
of the difference (the cost of 150 more rounds / 150), next to the time per round at 50: equal per-round
costs mean linear cost. Run: ``python benchmarks/bench_dask_early_stopping.py [--rows N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    return X, 2.0 * X[:, 0] + np.sin(2.0 * X[:, 1]) + 0.3 * rng.normal(size=n)


def fit_time(client, engine, rounds, X, y, Xv, yv, repeat):
    from selboost.dask import DaskSelectiveRegressor

    best = np.inf
    for _ in range(repeat):
        model = DaskSelectiveRegressor(engine=engine, n_estimators=rounds, learning_rate=0.01,
                                       early_stopping_rounds=rounds, client=client,
                                       **({"max_depth": 4} if engine == "xgboost" else {"num_leaves": 15}))
        start = time.perf_counter()
        model.fit(X, y, eval_set=[(Xv, yv)])
        best = min(best, time.perf_counter() - start)
        assert len(model.evals_result_["validation_0"]["selective_loss"]) == rounds
    return best


def main():
    import dask.array as da
    import distributed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    X, y = data(args.rows, 0)
    Xv, yv = data(args.rows // 4, 1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        chunk = args.rows // 4
        dX, dy = da.from_array(X, chunks=(chunk, 8)), da.from_array(y, chunks=chunk)
        dXv, dyv = da.from_array(Xv, chunks=(chunk // 4, 8)), da.from_array(yv, chunks=chunk // 4)
        dX, dy, dXv, dyv = client.persist([dX, dy, dXv, dyv])
        print(f"rows {args.rows}, eval rows {Xv.shape[0]}, 2 worker processes; best of {args.repeat}")
        for engine in ("xgboost", "lightgbm"):
            fit_time(client, engine, 5, dX, dy, dXv, dyv, 1)  # warm-up: imports, compilation
            t50 = fit_time(client, engine, 50, dX, dy, dXv, dyv, args.repeat)
            t200 = fit_time(client, engine, 200, dX, dy, dXv, dyv, args.repeat)
            print(f"{engine:9s} 50 rounds {t50:6.2f} s   200 rounds {t200:6.2f} s   ratio {t200 / t50:4.2f}   "
                  f"per round: first 50 {1e3 * t50 / 50:6.1f} ms, next 150 {1e3 * (t200 - t50) / 150:6.1f} ms")


if __name__ == "__main__":
    main()
