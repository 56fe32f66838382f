"""Seconds per boosting round: selboost objectives against each engine's built-in objective.

Interleaved, paired runs: every repetition runs each configuration for ``--rounds`` rounds on the same
data (the order rotates between repetitions), timing only ``Booster.update`` (data construction and a
warm-up round are excluded). Reported: the median seconds per round of each configuration and the
median over repetitions of its ratio to the baseline of the same repetition, the ratio of the
minimums (the least disturbed runs, on a shared machine) and the process CPU time per round (all
threads; less sensitive to other processes than wall time, but it counts OpenMP spinning too).

    python benchmarks/bench_engines.py --task regression --rows 1000000 --features 50
    OMP_WAIT_POLICY=passive python benchmarks/bench_engines.py --task ranking

Tasks: ``regression`` (a selective loss ``Identity() + 9 Sigmoid`` against ``reg:pseudohubererror`` /
LightGBM ``huber``: non-constant hessians), ``binary`` (``0.25 Sigmoid`` link, target="link",
against ``binary:logistic`` / ``binary``), ``ranking`` (``ListwiseLoss()`` against LightGBM
``rank_xendcg`` and ``lambdarank`` and XGBoost ``rank:ndcg``, groups of ``--group-size`` rows).
Each selboost objective runs its kernels on one thread (``n_threads=1``, ``serial``, the objectives'
default) and on every core (``n_threads=-1``, ``all cores``). For regression and binary,
``xgb obj=numpy ...`` is the built-in objective's own mathematics as a plain NumPy ``obj=`` callable:
what XGBoost's custom-objective path (margins handed to Python, gradients handed back) costs any
custom objective; and ``xgb obj=numpy selective`` is the selboost loss itself in NumPy (through the
link's NumPy functions): the same trees as the selboost objective, so the difference is the objective's
own cost. A different loss grows different trees, whose histogram work differs (XGBoost builds the
smaller child's histogram): compare the selboost objective with a built-in of the same mathematics
(``binary``: ``0.25 Sigmoid`` with link-range targets is exactly ``binary:logistic``) to see its
overhead. ``objective ms/round`` is the time spent inside the objective callable.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def make_data(task, rows, features, group_size, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    signal = X[:, :5] @ np.array([1.0, -0.5, 0.25, 0.8, -1.2], dtype=np.float32)
    if task == "regression":
        y = signal + rng.normal(size=rows).astype(np.float32)
    elif task == "binary":
        y = (signal + rng.logistic(size=rows) > 0).astype(np.float32)
    else:
        noisy = signal + rng.normal(size=rows)
        y = np.clip(np.floor(noisy + 2.0), 0, 4).astype(np.float32)
    group = None
    if task == "ranking":
        n_groups = rows // group_size
        rows = n_groups * group_size
        X, y = X[:rows], y[:rows]
        group = np.full(n_groups, group_size, dtype=np.int64)
    return X, y, group


def numpy_pseudo_huber(preds, dtrain):
    """reg:pseudohubererror (huber_slope 1) as a NumPy objective: r / sqrt(1 + r^2), (1 + r^2)^-3/2."""
    r = preds - dtrain.get_label()
    scale = 1.0 + r * r
    root = np.sqrt(scale)
    return r / root, 1.0 / (scale * root)


def numpy_logistic(preds, dtrain):
    """binary:logistic as a NumPy objective: p - y, p (1 - p)."""
    p = 1.0 / (1.0 + np.exp(-preds))
    return p - dtrain.get_label(), p * (1.0 - p)


def numpy_selective(loss, label):
    """The same selective loss as a NumPy objective, through the link's NumPy functions: the trees are
    those of the selboost objective, so the difference is the objective's own cost."""
    link = loss.link
    target = link.h(label.astype(np.float64)) if loss.target == "score" else label.astype(np.float64)

    def objective(preds, data):
        z = preds.astype(np.float64)
        return link.h(z) - target, np.maximum(link.dh(z), loss.hess_min)

    return objective


class TimedObjective:
    """An objective callable that adds up the seconds spent inside it."""

    def __init__(self, objective):
        self.objective = objective
        self.seconds = 0.0

    def __call__(self, preds, data):
        start = time.perf_counter()
        result = self.objective(preds, data)
        self.seconds += time.perf_counter() - start
        return result


#: the selboost objectives' configurations: the kernels' ``n_threads`` and its name in the table
THREAD_LABELS = {1: "serial", -1: "all cores"}


def configurations(task, threads, y):
    import selboost

    if task == "regression":
        loss = selboost.SelectiveLoss(selboost.Identity() + 9 * selboost.Sigmoid(center=1.0, scale=0.5))
        xgb_builtin, lgb_builtin = {"objective": "reg:pseudohubererror"}, {"objective": "huber"}
    elif task == "binary":
        loss = selboost.SelectiveLoss(0.25 * selboost.Sigmoid(), target="link")
        # base_score is a probability for binary:logistic: 0.5 is margin 0, where the others start
        xgb_builtin, lgb_builtin = {"objective": "binary:logistic", "base_score": 0.5}, {"objective": "binary"}
    else:
        loss = selboost.ListwiseLoss()
        xgb_builtin, lgb_builtin = {"objective": "rank:ndcg"}, {"objective": "rank_xendcg"}
    configs = [("xgboost", "xgb " + xgb_builtin["objective"], xgb_builtin, None)]
    if task in ("regression", "binary"):
        numpy_objective = numpy_pseudo_huber if task == "regression" else numpy_logistic
        configs.append(("xgboost", f"xgb obj=numpy {xgb_builtin['objective']}", {},
                        TimedObjective(numpy_objective)))
        configs.append(("xgboost", "xgb obj=numpy selective", {}, TimedObjective(numpy_selective(loss, y))))
    for n_threads in (1, -1):
        configs.append(("xgboost", f"xgb selboost {THREAD_LABELS[n_threads]}", {},
                        TimedObjective(selboost.xgboost_objective(loss, n_threads=n_threads))))
    configs.append(("lightgbm", "lgb " + lgb_builtin["objective"], lgb_builtin, None))
    if task == "ranking":
        configs.append(("lightgbm", "lgb lambdarank", {"objective": "lambdarank"}, None))
    for n_threads in (1, -1):
        configs.append(("lightgbm", f"lgb selboost {THREAD_LABELS[n_threads]}", {},
                        TimedObjective(selboost.lightgbm_objective(loss, n_threads=n_threads))))
    return loss, configs


def _restart_timing(objective):
    if isinstance(objective, TimedObjective):
        objective.seconds = 0.0


class Runner:
    def __init__(self, X, y, group, threads):
        import lightgbm as lgb
        import xgboost as xgb

        self.xgb, self.lgb = xgb, lgb
        self.dtrain = xgb.DMatrix(X, label=y, group=group, nthread=threads)
        self.X, self.y, self.group = X, y, group
        self.threads = threads
        self.lgb_sets = {}

    def lgb_set(self, name):
        # one constructed Dataset per configuration (built-in and custom objectives may bin differently)
        if name not in self.lgb_sets:
            dataset = self.lgb.Dataset(self.X, label=self.y, group=self.group, free_raw_data=False,
                                       params={"verbose": -1, "force_row_wise": True, "max_bin": 255})
            dataset.construct()
            self.lgb_sets[name] = dataset
        return self.lgb_sets[name]

    def seconds_per_round(self, engine, name, params, objective, rounds):
        if engine == "xgboost":
            full = {"tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": self.threads,
                    "verbosity": 0, "base_score": 0.0, **params}
            booster = self.xgb.Booster(full, [self.dtrain])
            booster.update(self.dtrain, 0, fobj=objective)  # warm-up: first round allocations
            _restart_timing(objective)
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(1, rounds + 1):
                booster.update(self.dtrain, i, fobj=objective)
            return (time.perf_counter() - start) / rounds, (time.process_time() - cpu) / rounds
        full = {"num_leaves": 63, "learning_rate": 0.1, "num_threads": self.threads, "verbose": -1,
                "force_row_wise": True, "metric": "None", "boost_from_average": False, **params}
        if objective is not None:
            full["objective"] = "none"
        booster = self.lgb.Booster(full, self.lgb_set(name))
        fobj = objective

        def step():
            if fobj is None:
                booster.update()
            else:
                booster.update(fobj=fobj)

        step()
        _restart_timing(fobj)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            step()
        return (time.perf_counter() - start) / rounds, (time.process_time() - cpu) / rounds


def tree_cost_at_same_margins(runner, loss, reps):
    """XGBoost's boosting step alone, from the same margins, given the selboost loss's gradients and
    given reg:pseudohubererror's: the trees, and with them the histogram work, follow the gradients."""
    import inspect

    import selboost

    xgb, dtrain = runner.xgb, runner.dtrain
    params = {"tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": runner.threads, "verbosity": 0,
              "base_score": 0.0}
    objective = selboost.xgboost_objective(loss)
    booster = xgb.train(params, dtrain, 3, obj=objective)
    margins = booster.predict(dtrain, output_margin=True, training=True)
    gradients = {"selboost": [a.copy() for a in objective(margins, dtrain)],
                 "reg:pseudohubererror": [a.astype(np.float32) for a in numpy_pseudo_huber(margins, dtrain)]}
    with_iteration = "iteration" in inspect.signature(xgb.Booster.boost).parameters
    seconds = {name: [] for name in gradients}
    for _ in range(reps):
        for name, (grad, hess) in gradients.items():
            copy = booster.copy()
            start = time.perf_counter()
            if with_iteration:
                copy.boost(dtrain, 3, grad=grad, hess=hess)
            else:
                copy.boost(dtrain, grad, hess)
            seconds[name].append(time.perf_counter() - start)
    print("\nXGBoost's boosting step alone (Booster.boost) from the same margins, by whose gradients:")
    for name, values in seconds.items():
        print(f"  {name}: median {statistics.median(values):.4f} s, min {min(values):.4f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("regression", "binary", "ranking"), default="regression")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--group-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    X, y, group = make_data(args.task, args.rows, args.features, args.group_size)
    loss, configs = configurations(args.task, args.threads, y)
    runner = Runner(X, y, group, args.threads)
    times = {name: [] for _, name, _, _ in configs}
    cpu_times = {name: [] for _, name, _, _ in configs}
    objective_times = {name: [] for _, name, _, _ in configs}
    for rep in range(args.reps):
        shift = rep % len(configs)
        for engine, name, params, objective in configs[shift:] + configs[:shift]:
            wall, cpu = runner.seconds_per_round(engine, name, params, objective, args.rounds)
            times[name].append(wall)
            cpu_times[name].append(cpu)
            if objective is not None:  # timed from after the warm-up round
                objective_times[name].append(objective.seconds / args.rounds)
    print(f"# task={args.task} rows={X.shape[0]} features={X.shape[1]} rounds={args.rounds} reps={args.reps} "
          f"threads={args.threads} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} "
          f"NUMBA_THREADING_LAYER={os.environ.get('NUMBA_THREADING_LAYER', '(default)')} "
          f"python={platform.python_version()}")
    baselines = {"xgboost": configs[0][1], "lightgbm": next(c[1] for c in configs if c[0] == "lightgbm")}
    print("| configuration | wall s/round: median | min | ratio: median of paired | ratio of mins "
          "| CPU s/round: median | CPU ratio of medians | objective ms/round |")
    print("|---|---|---|---|---|---|---|---|")
    for engine, name, _, _ in configs:
        base, base_cpu = times[baselines[engine]], cpu_times[baselines[engine]]
        ratios = [t / b for t, b in zip(times[name], base)]
        objective_ms = (f"{1e3 * statistics.median(objective_times[name]):.1f}"
                        if objective_times[name] else "(built in)")
        print(f"| {name} | {statistics.median(times[name]):.4f} | {min(times[name]):.4f} | "
              f"{statistics.median(ratios):.3f} | {min(times[name]) / min(base):.3f} | "
              f"{statistics.median(cpu_times[name]):.4f} | "
              f"{statistics.median(cpu_times[name]) / statistics.median(base_cpu):.3f} | {objective_ms} |")
    if args.task == "regression":
        tree_cost_at_same_margins(runner, loss, max(args.reps, 5))


if __name__ == "__main__":
    main()
