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
Each selboost objective runs with the serial and with the parallel kernels.
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


def configurations(task, threads):
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
    for parallel in (False, True):
        configs.append(("xgboost", f"xgb selboost {'parallel' if parallel else 'serial'}", {},
                        selboost.xgboost_objective(loss, parallel=parallel)))
    configs.append(("lightgbm", "lgb " + lgb_builtin["objective"], lgb_builtin, None))
    if task == "ranking":
        configs.append(("lightgbm", "lgb lambdarank", {"objective": "lambdarank"}, None))
    for parallel in (False, True):
        configs.append(("lightgbm", f"lgb selboost {'parallel' if parallel else 'serial'}", {},
                        selboost.lightgbm_objective(loss, parallel=parallel)))
    return loss, configs


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
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            step()
        return (time.perf_counter() - start) / rounds, (time.process_time() - cpu) / rounds


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
    loss, configs = configurations(args.task, args.threads)
    runner = Runner(X, y, group, args.threads)
    times = {name: [] for _, name, _, _ in configs}
    cpu_times = {name: [] for _, name, _, _ in configs}
    for rep in range(args.reps):
        shift = rep % len(configs)
        for engine, name, params, objective in configs[shift:] + configs[:shift]:
            wall, cpu = runner.seconds_per_round(engine, name, params, objective, args.rounds)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    print(f"# task={args.task} rows={X.shape[0]} features={X.shape[1]} rounds={args.rounds} reps={args.reps} "
          f"threads={args.threads} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} "
          f"NUMBA_THREADING_LAYER={os.environ.get('NUMBA_THREADING_LAYER', '(default)')} "
          f"python={platform.python_version()}")
    baselines = {"xgboost": configs[0][1], "lightgbm": next(c[1] for c in configs if c[0] == "lightgbm")}
    print("| configuration | wall s/round: median | min | ratio: median of paired | ratio of mins "
          "| CPU s/round: median | CPU ratio of medians |")
    print("|---|---|---|---|---|---|---|")
    for engine, name, _, _ in configs:
        base, base_cpu = times[baselines[engine]], cpu_times[baselines[engine]]
        ratios = [t / b for t, b in zip(times[name], base)]
        print(f"| {name} | {statistics.median(times[name]):.4f} | {min(times[name]):.4f} | "
              f"{statistics.median(ratios):.3f} | {min(times[name]) / min(base):.3f} | "
              f"{statistics.median(cpu_times[name]):.4f} | "
              f"{statistics.median(cpu_times[name]) / statistics.median(base_cpu):.3f} |")


if __name__ == "__main__":
    main()
