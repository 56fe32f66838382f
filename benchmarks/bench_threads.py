"""Threaded against serial kernels: the scalar and listwise gradients of 1,000,000 rows on 1 and 2
threads, interleaved, best of ``--repeats``, after a warm-up call of each.

    python benchmarks/bench_threads.py
    PYTHONPATH=<another checkout> python benchmarks/bench_threads.py   # the same for another tree
"""

import argparse
import time

import numpy as np

import selboost
from selboost import Identity, ListwiseLoss, SelectiveLoss, Sigmoid


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"selboost from {selboost.__file__}")
    rng = np.random.default_rng(0)
    n = args.rows
    z = rng.normal(size=n).astype(np.float32)
    cases = {
        "scalar identity+9 sigmoid": SelectiveLoss(Identity() + 9 * Sigmoid()).bind(rng.normal(size=n)),
        "listwise, groups of 100": ListwiseLoss().bind(rng.integers(0, 4, n).astype(float), np.full(n // 100, 100)),
    }
    grad, hess = np.empty(n, np.float32), np.empty(n, np.float32)
    for name, bound in cases.items():
        counts = (1, args.threads)
        for t in counts:
            bound.gradient_hessian(z, grad_out=grad, hess_out=hess, n_threads=t)
        seconds = {t: [] for t in counts}
        for _ in range(args.repeats):
            for t in counts:
                started = time.perf_counter()
                bound.gradient_hessian(z, grad_out=grad, hess_out=hess, n_threads=t)
                seconds[t].append(time.perf_counter() - started)
        one, many = min(seconds[1]), min(seconds[args.threads])
        print(f"{name}: 1 thread {one * 1e3:.2f} ms, {args.threads} threads {many * 1e3:.2f} ms, "
              f"speed-up {one / many:.2f}")


if __name__ == "__main__":
    main()
