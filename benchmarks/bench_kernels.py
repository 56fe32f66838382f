"""Kernel throughput: samples per second for every loss kind, beside NumPy and a plain memory copy.

    python benchmarks/bench_kernels.py --rows 1000000 10000000 --repeats 7

For each loss kind and size it times, interleaved in one process on the same data:
  * ``selboost``: the bound loss's Numba kernel writing float32 gradients and hessians (what the engines
    consume), on every core (``n_threads=-1``) and on one thread (``n_threads=1``);
  * ``numpy``: a vectorised NumPy implementation of the same mathematics;
  * ``copy``: a Numba kernel that reads the same input bytes and writes the same output bytes with no
    arithmetic: the memory-bandwidth bound.
Reported: the best of ``--repeats`` runs after a warm-up call of each, in million samples per second,
and selboost as a fraction of the copy bound; the warm-up calls of the two selboost kernels (their Numba
compilation, or the load from Numba's cache) are reported apart, in seconds. The threaded kernel, the
serial kernel and the copy take turns within each round, so that the ratio compares times taken
close together.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit, prange

from selboost import Identity, ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, Sigmoid, Sinh
from selboost.links import Exp


@njit(cache=True, fastmath=False, parallel=True)
def copy_two_in_two_out(a, b, out_a, out_b):
    for i in prange(a.shape[0]):
        out_a[i] = a[i]
        out_b[i] = b[i]


def numpy_scalar(link, z, target_h, hess_min):
    return (link.h(z) - target_h).astype(np.float32), np.maximum(link.dh(z), hess_min).astype(np.float32)


def numpy_softmax(transform, z, q, pointer):
    phi = transform.h(z)
    dphi = transform.dh(z)
    starts = pointer[:-1]
    sizes = np.diff(pointer)
    top = np.repeat(np.maximum.reduceat(phi, starts), sizes)
    e = np.exp(phi - top)
    p = e / np.repeat(np.add.reduceat(e, starts), sizes)
    return (dphi * (p - q)).astype(np.float32), (dphi * dphi * p * (1.0 - p)).astype(np.float32)


def best_times(functions, repeats):
    """The best time of each function over ``repeats`` rounds, the functions taking turns within a
    round, so that a slow spell of this shared machine hits them all alike."""
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for k, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def cases(n, rng):
    """(name, bound loss, numpy callable, copy inputs) for each loss kind at n samples."""
    y = rng.normal(size=n)
    z = y + rng.normal(size=n)
    for name, link in [
        ("scalar identity", Identity()),
        ("scalar sigmoid", Sigmoid(1.0, 0.5)),
        ("scalar identity+9*sigmoid", Identity() + 9 * Sigmoid(1.0, 0.5)),
        ("scalar sinh", Sinh(0.0, 2.0)),
        ("scalar exp", Exp(0.0, 2.0)),
    ]:
        loss = SelectiveLoss(link)
        bound = loss.bind(y)
        yield name, bound, z, (lambda link=link, bound=bound: numpy_scalar(link, z, bound.target_h, 1e-6))

    group_size = 100
    groups = np.full(n // group_size, group_size)
    relevance = rng.integers(0, 5, size=groups.sum()).astype(np.float64)
    zg = z[: groups.sum()]
    for name, transform in [("listwise identity", Identity()), ("listwise sigmoid", Identity() + 4 * Sigmoid(2.0, 0.5))]:
        bound = ListwiseLoss(transform).bind(relevance, groups)
        pointer = bound.group_ptr
        yield name, bound, zg, (lambda t=transform, b=bound: numpy_softmax(t, zg, b.q, pointer))
    bound = PairwiseLoss(Identity(), pairs_per_item=8).bind(relevance, groups)
    yield "pairwise identity k=8", bound, zg, None

    k = 10
    rows = n // k
    labels = rng.integers(0, k, size=rows)
    zm = z[: rows * k].reshape(rows, k)
    bound = MulticlassLoss(Identity()).bind(labels, k)
    pointer = bound.group_ptr
    yield "multiclass identity k=10", bound, zm, (lambda b=bound: numpy_softmax(Identity(), zm.ravel(), b.q, pointer))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| loss | rows | selboost all cores (M/s) | selboost 1 thread (M/s) | numpy (M/s) | copy (M/s) "
          "| all cores / copy | warm-up s (all cores + 1 thread) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.rows:
        for name, bound, z, numpy_version in cases(n, rng):
            size = z.size
            grad = np.empty(z.shape, np.float32)
            hess = np.empty(z.shape, np.float32)
            other = np.asarray(getattr(bound, "target_h", getattr(bound, "q", getattr(bound, "relevance", None))))
            flat_z, flat_other = z.ravel(), other.ravel()

            def run(n_threads, bound=bound, z=z, grad=grad, hess=hess):
                bound.gradient_hessian(z, grad, hess, n_threads=n_threads)

            start = time.perf_counter()
            run(-1), run(1)
            warmup = time.perf_counter() - start
            copy_two_in_two_out(flat_z, flat_other, grad.ravel(), hess.ravel())
            if numpy_version is not None:
                numpy_version()
            t_par, t_ser, t_copy = best_times(
                [lambda: run(-1), lambda: run(1),
                 lambda: copy_two_in_two_out(flat_z, flat_other, grad.ravel(), hess.ravel())],
                args.repeats,
            )
            t_np = best_times([numpy_version], max(2, args.repeats // 3))[0] if numpy_version is not None else float("nan")
            rate = lambda t: size / t / 1e6  # noqa: E731
            print(
                f"| {name} | {size:.0e} | {rate(t_par):.0f} | {rate(t_ser):.0f} | {rate(t_np):.0f} | "
                f"{rate(t_copy):.0f} | {t_copy / t_par:.0%} | {warmup:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
