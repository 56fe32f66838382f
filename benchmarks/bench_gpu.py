"""XGBoost on a GPU: selboost objectives through device arrays against built-in objectives.

    python benchmarks/bench_gpu.py                      # 1e6 and 1e7 rows, 50 rounds each
    python benchmarks/bench_gpu.py --rows 1000000 --rounds 20 --out gpu.json

For each size, with ``device="cuda"`` and ``tree_method="hist"``:

* scalar: the built-in ``reg:pseudohubererror`` (a hessian that varies per sample, like a selective
  link's) against ``SelectiveLoss(Identity() + 9 * Sigmoid(c, s))`` given as ``obj=`` and computed on
  the GPU by ``selboost.cuda.to_device(...).gradient_hessian`` (cupy arrays handed back to XGBoost);
* listwise: the built-in ``rank:ndcg`` against ``ListwiseLoss(Identity())`` (groups of 100 rows);

reporting seconds per round (after a warm-up that compiles the kernels), the objective's own share
of each round (its calls timed with the device synchronised), and the objective alone on host
float32 scores (what XGBoost hands over: the copy to the device included) and on device scores.
Needs an NVIDIA GPU, XGBoost and CuPy; without a GPU it stops with a message saying what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


#: the tree settings shared by every run: only the objective differs between a pair of runs
BASE_PARAMS = {
    "device": "cuda", "tree_method": "hist", "max_depth": 6, "eta": 0.1, "max_bin": 256, "verbosity": 0,
}


def _fail(message):
    print(f"bench_gpu.py needs a CUDA GPU with XGBoost and CuPy: {message}", file=sys.stderr)
    return 2


def _timed_objective(device_loss):
    """An XGBoost ``obj=`` callable and the list of its per-call seconds."""
    seconds = []

    def objective(predt, dtrain):
        started = time.perf_counter()
        grad, hess = device_loss.gradient_hessian(predt)  # synchronises before returning
        seconds.append(time.perf_counter() - started)
        return grad, hess

    return objective, seconds


def _train_seconds(xgb, cupy, params, dtrain, rounds, obj=None):
    """Seconds per round of ``rounds`` rounds, after a 2-round warm-up (compilation, allocation)."""
    xgb.train(params, dtrain, num_boost_round=2, obj=obj)
    cupy.cuda.Device().synchronize()
    started = time.perf_counter()
    booster = xgb.train(params, dtrain, num_boost_round=rounds, obj=obj)
    cupy.cuda.Device().synchronize()
    return (time.perf_counter() - started) / rounds, booster


def _objective_alone(cupy, device_loss, predt_host, repeats=20):
    """Milliseconds per call on host float32 scores and on the same scores already on the device."""
    predt_device = cupy.asarray(predt_host)
    timings = {}
    for name, predt in (("host_input_ms", predt_host), ("device_input_ms", predt_device)):
        device_loss.gradient_hessian(predt)
        started = time.perf_counter()
        for _ in range(repeats):
            device_loss.gradient_hessian(predt)
        timings[name] = 1e3 * (time.perf_counter() - started) / repeats
    return timings


def bench_scalar(xgb, cupy, np, sbcuda, rows, features, rounds, seed):
    from selboost import Identity, SelectiveLoss, Sigmoid

    rs = cupy.random.RandomState(seed)
    X = rs.standard_normal((rows, features), dtype=cupy.float32)
    y = X[:, 0] * 2.0 + cupy.sin(3.0 * X[:, 1]) + 0.5 * rs.standard_normal(rows, dtype=cupy.float32)
    y_host = cupy.asnumpy(y).astype(np.float64)
    dtrain = xgb.QuantileDMatrix(X, label=y, max_bin=256)
    base = dict(BASE_PARAMS)

    builtin = dict(base, objective="reg:pseudohubererror", huber_slope=1.0,
                   base_score=float(np.median(y_host)))
    builtin_s, _ = _train_seconds(xgb, cupy, builtin, dtrain, rounds)

    link = Identity() + 9.0 * Sigmoid(center=float(np.quantile(y_host, 0.9)), scale=0.5)
    bound = SelectiveLoss(link).bind(y_host)
    device_loss = sbcuda.to_device(bound)
    objective, seconds = _timed_objective(device_loss)
    custom = dict(base, base_score=bound.init_score())
    custom_s, booster = _train_seconds(xgb, cupy, custom, dtrain, rounds, obj=objective)
    objective_s = float(np.mean(seconds[-rounds:]))
    predt = booster.predict(dtrain, output_margin=True).astype(np.float32)
    return {
        "task": "scalar", "rows": rows, "features": features, "rounds": rounds,
        "builtin": "reg:pseudohubererror", "builtin_s_per_round": builtin_s,
        "selboost": repr(bound.spec), "selboost_s_per_round": custom_s,
        "ratio": custom_s / builtin_s,
        "objective_s_per_round": objective_s, "objective_share": objective_s / custom_s,
        **_objective_alone(cupy, device_loss, predt),
    }


def bench_listwise(xgb, cupy, np, sbcuda, rows, features, rounds, seed, group_size=100):
    from selboost import Identity, ListwiseLoss

    rows = rows - rows % group_size
    n_groups = rows // group_size
    rs = cupy.random.RandomState(seed + 1)
    X = rs.standard_normal((rows, features), dtype=cupy.float32)
    signal = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.5 * rs.standard_normal(rows, dtype=cupy.float32)
    # relevance 0..4 by the quantiles of the signal
    cuts = cupy.quantile(signal, cupy.asarray([0.5, 0.75, 0.9, 0.97], dtype=cupy.float32))
    relevance = cupy.searchsorted(cuts, signal).astype(cupy.float32)
    groups = np.full(n_groups, group_size, dtype=np.int64)
    dtrain = xgb.QuantileDMatrix(X, label=relevance, group=groups, max_bin=256)
    base = dict(BASE_PARAMS)

    builtin = dict(base, objective="rank:ndcg")
    builtin_s, _ = _train_seconds(xgb, cupy, builtin, dtrain, rounds)

    bound = ListwiseLoss(Identity()).bind(cupy.asnumpy(relevance).astype(np.float64), groups)
    device_loss = sbcuda.to_device(bound)
    objective, seconds = _timed_objective(device_loss)
    custom = dict(base, base_score=0.0)
    custom_s, booster = _train_seconds(xgb, cupy, custom, dtrain, rounds, obj=objective)
    objective_s = float(np.mean(seconds[-rounds:]))
    predt = booster.predict(dtrain, output_margin=True).astype(np.float32)
    return {
        "task": "listwise", "rows": rows, "features": features, "rounds": rounds, "group_size": group_size,
        "builtin": "rank:ndcg", "builtin_s_per_round": builtin_s,
        "selboost": repr(bound.spec), "selboost_s_per_round": custom_s,
        "ratio": custom_s / builtin_s,
        "objective_s_per_round": objective_s, "objective_share": objective_s / custom_s,
        **_objective_alone(cupy, device_loss, predt),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", choices=("scalar", "listwise"), default=["scalar", "listwise"])
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    if min(args.rows) < 1000 or args.features < 3 or args.rounds < 1:
        parser.error("need --rows >= 1000, --features >= 3 and --rounds >= 1")

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return _fail("NUMBA_ENABLE_CUDASIM is set; a benchmark needs the real device")
    try:
        from selboost import cuda as sbcuda

        device_name = sbcuda.require_gpu()
    except RuntimeError as error:
        return _fail(str(error))
    try:
        import cupy
        import numpy as np
        import xgboost as xgb
    except ImportError as error:
        return _fail(f"{error} (pip install 'selboost[gpu,xgboost]')")

    results = []
    print(f"device: {device_name}; xgboost {xgb.__version__}, cupy {cupy.__version__}", flush=True)
    header = (f"{'task':9} {'rows':>9} {'built-in':>22} {'s/round':>8} {'selboost s/round':>17} {'ratio':>6} "
              f"{'obj share':>9} {'obj host ms':>11} {'obj dev ms':>10}")
    print(header, flush=True)
    for rows in args.rows:
        for task in args.tasks:
            bench = bench_scalar if task == "scalar" else bench_listwise
            result = bench(xgb, cupy, np, sbcuda, rows, args.features, args.rounds, args.seed)
            result["device"] = device_name
            results.append(result)
            print(f"{task:9} {result['rows']:>9} {result['builtin']:>22} "
                  f"{result['builtin_s_per_round']:>8.4f} {result['selboost_s_per_round']:>17.4f} "
                  f"{result['ratio']:>6.2f} "
                  f"{result['objective_share']:>9.1%} {result['host_input_ms']:>11.2f} "
                  f"{result['device_input_ms']:>10.2f}", flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
