"""How the objective's per-round cost grows with rows and with query-group sizes.

    python benchmarks/bench_scaling.py --rows 100000 1000000 10000000 --repeats 5

Times one ``gradient_hessian`` call of a *bound* loss (labels, groups and weights validated once, as
the engine adapters do on each worker) writing preallocated float32 gradients and hessians: the work
the objective adds to every boosting round on a worker, for the rows that worker holds. Kinds:

- ``scalar``: ``SelectiveLoss(Identity() + 9 * Sigmoid(0, 1))``;
- ``listwise g=G``: ``ListwiseLoss(Identity() + Sigmoid(1, 0.5))`` over groups of G rows;
- ``pairwise g=G``: ``PairwiseLoss(Identity() + Sigmoid(1, 0.5), pairs_per_item=8)`` over groups of G.

Reported: the best of ``--repeats`` calls (after one warm-up call) in milliseconds, nanoseconds per
row and million rows per second. Kernels run on one thread by default (``n_threads=1``, the
objectives' default, and one thread per Dask worker); ``--n-threads N`` runs them on N threads
(``-1``: every core; ``--parallel`` is short for ``--n-threads -1``). ``--max-seconds`` skips the
remaining larger sizes of a kind once one call of it took longer than that.

The serial kernels are cached on disk, the threaded ones are compiled at their first call. So that a
run does not share cache files with other checkouts or runs, this script compiles into a private cache
directory (``NUMBA_CACHE_DIR``, a new temporary directory unless set; the first run compiles, ~30-60 s,
not timed) and reports whether Numba's threading layer was started (it is only for ``--n-threads``
other than 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

if "NUMBA_CACHE_DIR" not in os.environ:  # before numba is imported
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="selboost-bench-numba-")

import numpy as np  # noqa: E402
from numba.np.ufunc import parallel as numba_parallel  # noqa: E402

from selboost import Identity, ListwiseLoss, PairwiseLoss, SelectiveLoss, Sigmoid  # noqa: E402


def make_bound(kind, group_size, n_rows, rng):
    if kind == "scalar":
        y = rng.normal(size=n_rows)
        return SelectiveLoss(Identity() + 9 * Sigmoid(0.0, 1.0)).bind(y)
    transform = Identity() + Sigmoid(1.0, 0.5)
    n_groups = n_rows // group_size
    sizes = np.full(n_groups, group_size, dtype=np.int64)
    sizes[-1] += n_rows - n_groups * group_size
    relevance = rng.integers(0, 5, size=n_rows).astype(np.float64)
    if kind == "listwise":
        return ListwiseLoss(transform).bind(relevance, sizes)
    return PairwiseLoss(transform, pairs_per_item=8).bind(relevance, sizes)


def time_call(bound, raw, repeats, n_threads):
    grad = np.empty(bound.shape, dtype=np.float32)
    hess = np.empty(bound.shape, dtype=np.float32)
    bound.gradient_hessian(raw, grad, hess, n_threads=n_threads)  # warm-up (compilation, page faults)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        bound.gradient_hessian(raw, grad, hess, n_threads=n_threads)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-threads", type=int, default=1,
                        help="threads of the Numba kernels (default 1; -1: every core)")
    parser.add_argument("--parallel", action="store_const", dest="n_threads", const=-1,
                        help="the same as --n-threads -1")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="skip larger sizes of a kind after a call slower than this")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(n < 1000 for n in args.rows) or any(g < 2 for g in args.group_sizes):
        parser.error("--repeats >= 1, --rows >= 1000 and --group-sizes >= 2 are required")
    if args.n_threads != -1 and args.n_threads < 1:
        parser.error("--n-threads must be >= 1 or -1 (every core)")

    kinds = [("scalar", None)]
    kinds += [("listwise", g) for g in args.group_sizes]
    kinds += [("pairwise", g) for g in args.group_sizes]
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"kernels on {'every core' if args.n_threads == -1 else f'{args.n_threads} thread(s)'}, "
          f"best of {args.repeats}")
    print(f"{'kind':16s} {'rows':>10s} {'ms/call':>10s} {'ns/row':>8s} {'Mrows/s':>8s}")
    rng = np.random.default_rng(args.seed)
    for kind, group_size in kinds:
        label = kind if group_size is None else f"{kind} g={group_size}"
        too_slow = False
        for n_rows in sorted(args.rows):
            if too_slow:
                print(f"{label:16s} {n_rows:10d} {'skipped':>10s}")
                continue
            bound = make_bound(kind, group_size, n_rows, rng)
            raw = rng.normal(size=n_rows)
            seconds = time_call(bound, raw, args.repeats, args.n_threads)
            print(f"{label:16s} {n_rows:10d} {1e3 * seconds:10.2f} {1e9 * seconds / n_rows:8.1f} "
                  f"{n_rows / seconds / 1e6:8.1f}", flush=True)
            too_slow = seconds > args.max_seconds
            del bound, raw
    print(f"# Numba threading layer started: {bool(numba_parallel._is_initialized)} "
          f"(NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']})")


if __name__ == "__main__":
    main()
