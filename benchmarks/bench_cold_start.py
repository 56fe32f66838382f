"""Cold and warm first fits: each a fresh Python process, 2,000 rows, 20 rounds.

    python benchmarks/bench_cold_start.py --repeats 3 --warmup
    python benchmarks/bench_cold_start.py --source /tmp/base --repeats 3   # another tree's selboost

*Cold*: an empty, temporary ``NUMBA_CACHE_DIR`` (a new machine, container, CI job, upgrade or Dask
worker); *warm*: a second process on the cache the cold one left. Each process reports the time to
import the engines (``numpy``, ``xgboost``, ``lightgbm``, ``sklearn``), then the time ``import selboost``
adds, then the first fit (Numba compilation included) and, in the same process, a second identical fit
(compiled code only), whose difference from the first is the compilation the fit paid, and the first
fit's CPU time (all threads: a steadier figure than seconds on a machine shared with other work, since
compilation runs on one thread). The repeats take
turns across the cases, so that a slow spell of this shared machine hits them alike; reported: medians.
``--source DIR``: put ``DIR`` (a folder holding a ``selboost`` package) first on ``sys.path``, to time
another revision (``git archive <rev> selboost | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

#: the code each case times; ``X``, ``y``, ``group``, ``link`` are defined by ``_PRELUDE``
CASES = {
    "SelectiveRegressor(Identity() + 9 Sigmoid(2, 0.5))": (
        "SelectiveRegressor(SelectiveLoss(link), n_estimators=20).fit(X, y)"),
    "SelectiveRanker()": "SelectiveRanker(n_estimators=20).fit(X, relevance, group=group)",
    "xgboost.train(obj=xgboost_objective(SelectiveLoss(link)))": (
        "xgb.train({'verbosity': 0}, xgb.DMatrix(X, y), 20, obj=xgboost_objective(SelectiveLoss(link)))"),
    "lightgbm.train(lightgbm_objective(SelectiveLoss(link)))": (
        "lgb.train({'objective': lightgbm_objective(SelectiveLoss(link)), 'verbose': -1}, "
        "lgb.Dataset(X, y), 20)"),
    "xgboost.train(obj=xgboost_objective(ListwiseLoss()))": (
        "xgb.train({'verbosity': 0}, xgb.DMatrix(X, relevance, group=group), 20, "
        "obj=xgboost_objective(ListwiseLoss()))"),
    "xgboost.XGBRegressor (no selboost, for scale)": "xgb.XGBRegressor(n_estimators=20).fit(X, y)",
}

#: ``selboost warmup --losses`` for each case (``--warmup``): the losses its fit uses
WARMUP = {
    "SelectiveRegressor(Identity() + 9 Sigmoid(2, 0.5))": ["selective:identity + 9*sigmoid(2, 0.5)"],
    "SelectiveRanker()": ["listwise"],
    "xgboost.train(obj=xgboost_objective(SelectiveLoss(link)))": ["selective:identity + 9*sigmoid(2, 0.5)"],
    "lightgbm.train(lightgbm_objective(SelectiveLoss(link)))": ["selective:identity + 9*sigmoid(2, 0.5)"],
    "xgboost.train(obj=xgboost_objective(ListwiseLoss()))": ["listwise"],
}

_PRELUDE = """
import json, sys, time
start = time.perf_counter()
import numpy as np, xgboost as xgb, lightgbm as lgb, sklearn
engines = time.perf_counter() - start
start = time.perf_counter()
import selboost
from selboost import (Identity, ListwiseLoss, SelectiveLoss, SelectiveRanker, SelectiveRegressor, Sigmoid,
                      lightgbm_objective, xgboost_objective)
imported = time.perf_counter() - start
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 10))
y = X[:, 0] + 2.0 + 0.5 * rng.normal(size=2000)
relevance = rng.integers(0, 5, size=2000).astype(float)
group = np.full(100, 20)
link = Identity() + 9 * Sigmoid(2.0, 0.5)
"""

_TIMED = """
times = []
cpu = []
for _ in range(2):
    start, cpu_start = time.perf_counter(), time.process_time()
    {code}
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - cpu_start)
print(json.dumps({{"engines": engines, "import": imported, "first": times[0], "second": times[1],
                   "first_cpu": cpu[0], "selboost": selboost.__file__}}))
"""


def run_case(code, cache_dir, source):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    if source:
        env["PYTHONPATH"] = os.pathsep.join([source] + [p for p in [env.get("PYTHONPATH")] if p])
    script = _PRELUDE + _TIMED.format(code=code)
    # run outside the repository: ``python -c`` puts the working directory first on sys.path
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False,
                            cwd=tempfile.gettempdir())
    if result.returncode:
        raise RuntimeError(f"case failed:\n{code}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_warmup(losses, cache_dir, source):
    """``selboost warmup --losses ...`` into ``cache_dir``; its wall seconds."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    if source:
        env["PYTHONPATH"] = os.pathsep.join([source] + [p for p in [env.get("PYTHONPATH")] if p])
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "selboost.cli", "warmup", "--losses", *losses], env=env, check=True,
                   capture_output=True, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", default=None, help="a folder holding the selboost package to time")
    parser.add_argument("--cases", nargs="*", default=None, help="substrings selecting the cases (default all)")
    parser.add_argument("--warmup", action="store_true",
                        help="also time a first fit in a fresh process after `selboost warmup` of its losses")
    args = parser.parse_args(argv)
    names = [n for n in CASES if not args.cases or any(s in n for s in args.cases)]
    cold = {n: [] for n in names}
    warm = {n: [] for n in names}
    after_warmup = {n: [] for n in names}
    where = None
    for _ in range(args.repeats):
        for name in names:
            with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
                cold[name].append(run_case(CASES[name], cache_dir, args.source))
                warm[name].append(run_case(CASES[name], cache_dir, args.source))
            if args.warmup and name in WARMUP:
                with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
                    seconds = run_warmup(WARMUP[name], cache_dir, args.source)
                    after_warmup[name].append((seconds, run_case(CASES[name], cache_dir, args.source)))
            where = cold[name][-1]["selboost"]
    median = statistics.median
    print(f"selboost: {where}  repeats: {args.repeats} (medians; fresh process each, 2,000 rows, 20 rounds)")
    print("| first fit | cold: first fit s | cold: compilation s | cold: first fit CPU s | warm: first fit s "
          "| warm: second fit s | engines import s | import selboost adds s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        c, w = cold[name], warm[name]
        print(f"| `{name}` | {median(r['first'] for r in c):.2f} "
              f"| {median(r['first'] - r['second'] for r in c):.2f} | {median(r['first_cpu'] for r in c):.2f} "
              f"| {median(r['first'] for r in w):.3f} "
              f"| {median(r['second'] for r in w):.3f} | {median(r['engines'] for r in c + w):.2f} "
              f"| {median(r['import'] for r in c + w):.3f} |", flush=True)
    if args.warmup:
        print("\n| first fit after `selboost warmup` | warmup s | first fit s | second fit s |\n|---|---|---|---|")
        for name in names:
            if after_warmup[name]:
                runs = after_warmup[name]
                print(f"| `{name}` | {median(s for s, _ in runs):.2f} | {median(r['first'] for _, r in runs):.3f} "
                      f"| {median(r['second'] for _, r in runs):.3f} |", flush=True)


if __name__ == "__main__":
    main()
