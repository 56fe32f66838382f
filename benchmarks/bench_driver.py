"""selboost.xgboost_train (margins kept by selboost) against xgboost.train(obj=...) and built-in objectives.

    python benchmarks/bench_driver.py                                   # GPU: 1e6 and 1e7 rows x 50
    python benchmarks/bench_driver.py --rows 1000000 --rounds 10 --reps 2 --out driver.json
    python benchmarks/bench_driver.py --device cpu --rows 200000 --rounds 10 --reps 5

Per-round seconds, interleaved A/B in one run: every repetition runs each configuration of a task for
``--rounds`` rounds after ``--warmup`` rounds (kernel compilation, allocations), in an order that
rotates between repetitions, on the same data. Configurations:

* ``built-in``: XGBoost's own objective (``Booster.update``);
* ``xgb.train obj=``: the selboost objective as ``obj=`` (``Booster.update(fobj=...)``: XGBoost hands
  the margins over in host memory; on the GPU the objective copies them back to the device);
* ``selboost.xgboost_train``: the driver with its own margins, advanced by each round's trees on X (device
  margins and CUDA-kernel gradients on the GPU, host float32 margins on the CPU);
* ``selboost.xgboost_train no X`` (CPU only): the driver reading XGBoost's margins every round.

Tasks (``--tasks``): ``binary``: ``SelectiveLoss(0.25 * Sigmoid(), target="link")`` on 0/1 targets
against ``binary:logistic``, the same mathematics (so the same trees up to float32 rounding of the
gradients; the models' agreement is printed); goal <= 1.10x. ``ranking``: ``ListwiseLoss()`` against
``rank:ndcg`` (groups of 100); goal <= 0.7x. ``scalar``: ``Identity() + 9 Sigmoid(q90, 0.5)`` against
``reg:pseudohubererror``. ``lightgbm`` (GPU only, needs a CUDA build of LightGBM, skipped otherwise):
``device_type="cuda"`` with its built-in ``binary`` against the selboost objective, whose host
gradients LightGBM copies to the device every round.

On the GPU it also prints each driver round's phases (gradients, ``Booster.boost``, adding the trees)
and the device memory of every configuration, each measured in a fresh process (XGBoost's caching
allocator keeps memory between boosters) with ``cudaMemGetInfo`` above the bare CUDA context: after
building the data, and the peak of a few rounds (polled). Only the driver keeps X (float32) on the
device; the others release it once the QuantileDMatrix is built. Without a GPU (or with the simulator on) the
default ``--device cuda`` stops with exit status 2 and a message saying what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TASKS = ("binary", "ranking", "scalar")
BUILTIN = {"binary": "binary:logistic", "ranking": "rank:ndcg", "scalar": "reg:pseudohubererror"}
GOALS = {"binary": 1.10, "ranking": 0.70}


def _fail(message):
    print(f"bench_driver.py needs a CUDA GPU with XGBoost and CuPy: {message}", file=sys.stderr)
    return 2


def _gpu_problem():
    """None when the GPU run can go ahead, else what is missing."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set; a benchmark needs the real device"
    try:
        from selboost import cuda as sbcuda

        sbcuda.require_gpu()
    except RuntimeError as error:
        return str(error)
    try:
        import cupy  # noqa: F401
        import xgboost as xgb
    except ImportError as error:
        return f"{error} (pip install 'selboost[gpu,xgboost]')"
    if not xgb.build_info().get("USE_CUDA", False):
        return "this XGBoost build has no CUDA support"
    return None


# ---------------------------------------------------------------- data and configurations


class Task:
    """One task's data (X on the training device), its DMatrix, loss and parameters."""

    def __init__(self, task, rows, features, device, seed=0, group_size=100):
        import xgboost as xgb

        from selboost import Identity, ListwiseLoss, SelectiveLoss, Sigmoid

        self.task, self.device = task, device
        if task == "ranking":
            rows -= rows % group_size
        xp = _xp(device)
        # both have standard_normal(size, dtype=) and uniform(low, high, size)
        rs = xp.random.RandomState(seed) if device == "cuda" else np.random.default_rng(seed)
        X = rs.standard_normal((rows, features), dtype=xp.float32)
        signal = X[:, :5] @ xp.asarray([1.0, -0.5, 0.25, 0.8, -1.2], dtype=xp.float32)
        group = None
        base = {"device": device, "tree_method": "hist", "max_depth": 6, "eta": 0.1, "max_bin": 256,
                "verbosity": 0}
        if task == "binary":
            logistic = xp.log(rs.uniform(1e-7, 1.0, rows)) - xp.log(rs.uniform(1e-7, 1.0, rows))
            y = (signal + logistic.astype(xp.float32) > 0).astype(xp.float32)
            self.loss = SelectiveLoss(0.25 * Sigmoid(), target="link")
            # base_score 0.5 is margin 0 for binary:logistic: both start at margin 0
            self.builtin = dict(base, objective="binary:logistic", base_score=0.5)
            self.custom = dict(base, base_score=0.0)
        elif task == "ranking":
            noisy = signal + rs.standard_normal(rows, dtype=xp.float32)
            y = xp.clip(xp.floor(noisy + 2.0), 0, 4).astype(xp.float32)
            group = np.full(rows // group_size, group_size, dtype=np.int64)
            self.loss = ListwiseLoss(Identity())
            self.builtin = dict(base, objective="rank:ndcg")
            self.custom = dict(base, base_score=0.0)
        else:
            y = signal + 0.5 * rs.standard_normal(rows, dtype=xp.float32)
            y_host = _host(y).astype(np.float64)
            center = float(np.quantile(y_host, 0.9))
            self.loss = SelectiveLoss(Identity() + 9.0 * Sigmoid(center=center, scale=0.5))
            self.builtin = dict(base, objective="reg:pseudohubererror", huber_slope=1.0,
                                base_score=float(np.median(y_host)))
            self.custom = dict(base, base_score=float(self.loss.bind(y_host).init_score()))
        self.X = X
        self.dtrain = xgb.QuantileDMatrix(X, label=y, group=group, max_bin=256)
        self.rows, self.features = rows, features

    def drop_features(self):
        """Release X (a configuration that does not need it after the DMatrix is built)."""
        self.X = None
        if self.device == "cuda":
            import cupy

            cupy.get_default_memory_pool().free_all_blocks()


def _xp(device):
    if device == "cuda":
        import cupy

        return cupy
    return np


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def configurations(device):
    configs = ["built-in", "xgb.train obj=", "selboost.xgboost_train"]
    return configs + ["selboost.xgboost_train no X"] if device == "cpu" else configs


def _sync(device):
    if device == "cuda":
        import cupy

        cupy.cuda.Device().synchronize()


def make_step(task, config):
    """(booster, step(i)) for one configuration: ``step`` boosts one round."""
    import xgboost as xgb

    from selboost import xgboost_objective
    from selboost.engines import _xgboost_train as driver

    dtrain = task.dtrain
    booster = xgb.Booster(task.builtin if config == "built-in" else task.custom, [dtrain])
    if config == "built-in":
        return booster, lambda i: booster.update(dtrain, i)
    if config == "xgb.train obj=":
        objective = xgboost_objective(task.loss, device=task.device)
        return booster, lambda i: booster.update(dtrain, i, fobj=objective)
    keeper = driver.margin_keeper(booster, dtrain, task.loss, task.X if config == "selboost.xgboost_train" else None)
    return booster, lambda i: keeper.boost(booster, dtrain, i)


def seconds_per_round(task, config, rounds, warmup):
    booster, step = make_step(task, config)
    for i in range(warmup):
        step(i)
    _sync(task.device)
    start = time.perf_counter()
    for i in range(warmup, warmup + rounds):
        step(i)
    _sync(task.device)
    return (time.perf_counter() - start) / rounds, booster


def driver_phases(task, rounds, warmup):
    """Milliseconds per driver round in each phase, the device synchronised between them."""
    from selboost.engines import _xgboost_train as driver

    import xgboost as xgb

    dtrain = task.dtrain
    booster = xgb.Booster(task.custom, [dtrain])
    keeper = driver.margin_keeper(booster, dtrain, task.loss, task.X)
    for i in range(warmup):
        keeper.boost(booster, dtrain, i)
    phases = {"gradients": 0.0, "boost": 0.0, "trees": 0.0}
    for i in range(warmup, warmup + rounds):
        t0 = time.perf_counter()
        grad, hess = keeper.gradients()
        _sync(task.device)
        t1 = time.perf_counter()
        booster.boost(dtrain, i, grad=grad, hess=hess)
        _sync(task.device)
        t2 = time.perf_counter()
        delta = booster.inplace_predict(keeper.X, iteration_range=(i, i + 1), predict_type="margin",
                                        base_margin=keeper.zeros)
        keeper.add(delta)
        _sync(task.device)
        t3 = time.perf_counter()
        for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            phases[name] += seconds
    return {name: 1e3 * seconds / rounds for name, seconds in phases.items()}


def _structure(booster):
    """Each tree's splits (feature, threshold, branches) without leaf values, gains or covers."""
    def strip(node):
        if "leaf" in node:
            return "leaf"
        return (node["split"], node["split_condition"], node.get("missing"),
                tuple(strip(child) for child in node["children"]))

    return [strip(json.loads(tree)) for tree in booster.get_dump(dump_format="json")]


def agreement(task, boosters):
    """How the models of one repetition agree: the driver against xgb.train obj= (trees, bit for bit)
    and, for binary, against binary:logistic (the same mathematics)."""
    margins = {name: _host(booster.inplace_predict(task.X, predict_type="margin"))
               for name, booster in boosters.items()}
    out = {"driver_trees_equal_obj": boosters["selboost.xgboost_train"].get_dump() == boosters["xgb.train obj="].get_dump()}
    if task.task == "binary":
        out["driver_vs_builtin_max_margin_diff"] = float(np.max(np.abs(
            margins["selboost.xgboost_train"] - margins["built-in"])))
        out["driver_vs_builtin_same_splits"] = _structure(boosters["selboost.xgboost_train"]) == _structure(
            boosters["built-in"])
    return out


# ---------------------------------------------------------------- peak device memory


class _PeakMemory:
    """Polls the device's used memory (cudaMemGetInfo) in a thread from ``start()`` to ``stop()``."""

    def __init__(self, interval=0.002):
        import cupy

        self.runtime = cupy.cuda.runtime
        self.interval = interval
        self.peak = self.used()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def used(self):
        free, total = self.runtime.memGetInfo()
        return total - free

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used())
            time.sleep(self.interval)

    def start(self):
        self.peak = self.used()
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.used())


def memory_child(task_name, config, rows, features, rounds):
    """In a fresh process: device bytes held after building the data (X released unless the
    configuration needs it) and at the peak of ``rounds`` rounds, both above the bare CUDA context."""
    import cupy

    cupy.cuda.Device().synchronize()  # the context exists before the baseline
    meter = _PeakMemory()
    context = meter.used()
    task = Task(task_name, rows, features, "cuda")
    if config != "selboost.xgboost_train":
        task.drop_features()  # only the driver keeps X
    cupy.get_default_memory_pool().free_all_blocks()  # the data generation's temporaries
    data = meter.used() - context
    meter.start()
    _, step = make_step(task, config)
    for i in range(rounds):
        step(i)
    _sync("cuda")
    print("PEAK", meter.stop() - context, data)


def peak_memory(task_name, config, rows, features, rounds):
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", task_name, config, str(rows),
               str(features), str(rounds)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    for line in result.stdout.splitlines():
        if line.startswith("PEAK "):
            peak, data = (int(value) for value in line.split()[1:])
            return {"peak": peak, "after_data": data}
    print(f"  (peak memory of {task_name} / {config} failed: {result.stderr.strip()[-300:]})", flush=True)
    return None


# ---------------------------------------------------------------- LightGBM on CUDA


def lightgbm_cuda(rows, features, rounds, warmup, reps):
    """LightGBM device_type="cuda": built-in binary against the selboost objective (host gradients
    copied to the device every round); None with the reason when LightGBM has no CUDA build here."""
    from selboost.engines import get_engine

    problem = get_engine("lightgbm").gpu_problem("cuda")
    if problem is not None:
        return {"skipped": problem}
    import lightgbm as lgb

    from selboost import SelectiveLoss, Sigmoid, lightgbm_objective

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    y = (X[:, :5] @ np.array([1.0, -0.5, 0.25, 0.8, -1.2], dtype=np.float32) + rng.logistic(size=rows) > 0)
    dataset = lgb.Dataset(X, label=y.astype(np.float32), params={"verbose": -1, "max_bin": 255})
    dataset.construct()
    base = {"device_type": "cuda", "num_leaves": 63, "learning_rate": 0.1, "verbose": -1, "metric": "None",
            "boost_from_average": False}
    objective = lightgbm_objective(SelectiveLoss(0.25 * Sigmoid(), target="link"))
    times = {"built-in binary": [], "selboost objective": []}
    for rep in range(reps):
        order = list(times) if rep % 2 == 0 else list(times)[::-1]
        for name in order:
            params = dict(base, objective="binary" if name == "built-in binary" else objective)
            booster = lgb.Booster(params, dataset)
            for _ in range(warmup):
                booster.update()
            start = time.perf_counter()
            for _ in range(rounds):
                booster.update()
            times[name].append((time.perf_counter() - start) / rounds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"s_per_round": medians,
            "host_gradient_cost_s": medians["selboost objective"] - medians["built-in binary"],
            "ratio": medians["selboost objective"] / medians["built-in binary"]}


# ---------------------------------------------------------------- main


def run(args):
    import xgboost as xgb

    device = args.device
    results = []
    versions = f"xgboost {xgb.__version__}, numpy {np.__version__}, python {platform.python_version()}"
    if device == "cuda":
        import cupy

        from selboost import cuda as sbcuda

        versions += f", cupy {cupy.__version__}; device: {sbcuda.require_gpu()}"
    print(f"# device={device} features={args.features} rounds={args.rounds} warmup={args.warmup} "
          f"reps={args.reps}; {versions}", flush=True)
    configs = configurations(device)
    for rows in args.rows:
        for task_name in [t for t in args.tasks if t != "lightgbm"]:
            task = Task(task_name, rows, args.features, device, seed=args.seed)
            times = {config: [] for config in configs}
            boosters = {}
            for rep in range(args.reps):
                shift = rep % len(configs)
                for config in configs[shift:] + configs[:shift]:
                    seconds, boosters[config] = seconds_per_round(task, config, args.rounds, args.warmup)
                    times[config].append(seconds)
            agree = agreement(task, boosters)
            record = {"task": task_name, "rows": task.rows, "features": args.features, "device": device,
                      "builtin": BUILTIN[task_name], "loss": repr(task.loss), "agreement": agree,
                      "s_per_round": {c: statistics.median(v) for c, v in times.items()},
                      "s_per_round_min": {c: min(v) for c, v in times.items()}}
            base = times["built-in"]
            obj = times["xgb.train obj="]
            record["ratio_to_builtin"] = {c: statistics.median(t / b for t, b in zip(v, base))
                                          for c, v in times.items()}
            record["ratio_to_obj"] = {c: statistics.median(t / b for t, b in zip(v, obj)) for c, v in times.items()}
            if device == "cuda":
                record["driver_phases_ms"] = driver_phases(task, args.rounds, args.warmup)
            del task, boosters
            if device == "cuda" and args.memory:
                record["peak_device_bytes"] = {c: peak_memory(task_name, c, rows, args.features, args.warmup + 2)
                                               for c in configs}
            results.append(record)
            _print_record(record)
    if device == "cuda" and "lightgbm" in args.tasks:
        for rows in args.rows:
            record = {"task": "lightgbm", "rows": rows, "features": args.features,
                      **lightgbm_cuda(rows, args.features, args.rounds, args.warmup, args.reps)}
            results.append(record)
            print(f"lightgbm device_type=cuda, {rows} rows: {json.dumps(record)}", flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


def _print_record(record):
    goal = GOALS.get(record["task"])
    print(f"\n## {record['task']}: {record['rows']} rows x {record['features']} features, {record['device']}, "
          f"against {record['builtin']}" + (f" (goal <= {goal:.2f}x)" if goal else ""))
    memory = record.get("peak_device_bytes")
    print("| configuration | s/round median | min | ratio to built-in | ratio to xgb.train obj= |"
          + (" device MiB: data, training peak |" if memory else ""))
    print("|---|---|---|---|---|" + ("---|" if memory else ""))
    for config, seconds in record["s_per_round"].items():
        line = (f"| {config} | {seconds:.4f} | {record['s_per_round_min'][config]:.4f} | "
                f"{record['ratio_to_builtin'][config]:.3f} | {record['ratio_to_obj'][config]:.3f} |")
        if memory:
            value = memory.get(config)
            line += (f" {value['after_data'] / 2**20:.0f}, {value['peak'] / 2**20:.0f} |" if value is not None
                     else " (failed) |")
        print(line)
    if "driver_phases_ms" in record:
        phases = record["driver_phases_ms"]
        print("driver round, ms: " + ", ".join(f"{name} {value:.2f}" for name, value in phases.items()))
    print("agreement: " + json.dumps(record["agreement"]), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", choices=TASKS + ("lightgbm",), default=list(TASKS) + ["lightgbm"])
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the peak device memory runs (one process per configuration)")
    parser.add_argument("--out", help="write the results as JSON to this file")
    parser.add_argument("--memory-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        task_name, config, rows, features, rounds = args.memory_child
        memory_child(task_name, config, int(rows), int(features), int(rounds))
        return 0
    if min(args.rows) < 1000 or args.features < 5 or args.rounds < 1 or args.reps < 1 or args.warmup < 1:
        parser.error("need --rows >= 1000, --features >= 5, --rounds >= 1, --reps >= 1 and --warmup >= 1")
    if args.device == "cuda":
        problem = _gpu_problem()
        if problem is not None:
            return _fail(problem)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
