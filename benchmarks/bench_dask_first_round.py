"""A Dask worker's first boosting round: ``xgboost.dask.train`` with a selboost objective on a
LocalCluster of worker processes, with an empty and with a warm Numba cache.

    python benchmarks/bench_dask_first_round.py --workers 2

Each measurement is a fresh Python process that starts a LocalCluster (``processes=True``, one thread
per worker) with ``NUMBA_CACHE_DIR`` set to a temporary folder, which the worker processes inherit:
every worker compiles into, and loads from, that one folder (Numba writes each cache file to a
temporary name and renames it, so workers compiling at the same time do not corrupt it; each still
compiles what it does not find). Reported: the seconds of a first ``train`` (1 round, then 20 rounds),
and of a second identical ``train`` on the same workers; *cold*: empty cache, *warm*: a new cluster on
the cache the cold run left.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_SCRIPT = """
import json, sys, time
import numpy as np, dask.array as da, xgboost as xgb
from distributed import Client, LocalCluster
from selboost import Identity, SelectiveLoss, Sigmoid
from selboost.dask import xgboost_dask_objective

rounds = int(sys.argv[2])
with LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1, processes=True,
                  dashboard_address=":0") as cluster, Client(cluster) as client:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 10))
    y = X[:, 0] + 2.0 + 0.5 * rng.normal(size=2000)
    dX, dy = da.from_array(X, chunks=1000), da.from_array(y, chunks=1000)
    objective = xgboost_dask_objective(SelectiveLoss(Identity() + 9 * Sigmoid(2.0, 0.5)))
    times = []
    for _ in range(2):
        dtrain = xgb.dask.DaskDMatrix(client, dX, dy)
        start = time.perf_counter()
        xgb.dask.train(client, {"verbosity": 0, "nthread": 1}, dtrain, rounds, obj=objective)
        times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def run(workers, rounds, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(workers), str(rounds)], env=env,
                            capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"| xgboost.dask.train, {args.workers} worker processes | cold: first train s | cold: second train s "
          "| warm: first train s | warm: second train s |\n|---|---|---|---|---|")
    for rounds in (1, 20):
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
            cold = run(args.workers, rounds, cache_dir)
            warm = run(args.workers, rounds, cache_dir)
        print(f"| {rounds} round(s) | {cold[0]:.2f} | {cold[1]:.2f} | {warm[0]:.2f} | {warm[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
