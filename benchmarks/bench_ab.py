"""A/B kernel timing: this working tree's gradient kernels against those of a git revision, in one process.

    python benchmarks/bench_ab.py --base 2f23e13 --rows 1000000 --repeats 15

The revision's ``selboost`` is unpacked into a temporary folder under the name ``selboost_base`` and
imported beside the working tree's ``selboost``; for every loss kind both bind the same data, are
compiled and warmed up first, and then take turns within each round (so that a slow spell of this shared
machine hits both alike). Reported: the best time of each over ``--repeats`` rounds, in ns per sample,
and the ratio new / base (below 1: the working tree is faster).
"""

from __future__ import annotations

import argparse
import inspect
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load_base(revision, folder):
    """The package at ``revision`` as the module ``selboost_base``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "selboost"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = Path(folder) / "selboost"
    for source in package.rglob("*.py"):
        text = re.sub(r"\bselboost\b", "selboost_base", source.read_text())
        source.write_text(text)
    package.rename(Path(folder) / "selboost_base")
    sys.path.insert(0, str(folder))
    import selboost_base

    return selboost_base


def _accepts(function, name):
    """Whether ``function`` (a class: its constructor) takes a keyword ``name``."""
    return name in inspect.signature(function).parameters


def serial_loss(cls, *args, **kwargs):
    """``cls(*args, **kwargs)`` with its serial kernels: revisions before ``n_threads`` chose them in the
    constructor (``parallel=False``); since then a loss has no such option and runs serially by default."""
    if _accepts(cls, "parallel"):
        kwargs["parallel"] = False
    return cls(*args, **kwargs)


def serial_call(bound):
    """``bound.gradient_hessian`` on one thread, in either API (``n_threads=1`` where it exists)."""
    if _accepts(bound.gradient_hessian, "n_threads"):
        return lambda *args: bound.gradient_hessian(*args, n_threads=1)
    return bound.gradient_hessian


def cases(package, n, rng_seed=0):
    """(name, bound loss, scores) for each loss kind, from ``package`` (selboost or selboost_base), with the
    serial kernels in both the old API (``parallel=`` on the loss) and the new (``n_threads=`` on the call)."""
    rng = np.random.default_rng(rng_seed)
    y = rng.normal(size=n)
    z = y + rng.normal(size=n)
    Identity, Sigmoid, Sinh, Exp = package.Identity, package.Sigmoid, package.Sinh, package.links.Exp
    for name, link in [("scalar sigmoid", Sigmoid(1.0, 0.5)), ("scalar identity+9*sigmoid", Identity() + 9 * Sigmoid(1.0, 0.5)),
                       ("scalar sinh", Sinh(0.0, 2.0)), ("scalar exp", Exp(0.0, 2.0))]:
        yield name, serial_loss(package.SelectiveLoss, link).bind(y), z
    groups = np.full(n // 100, 100)
    relevance = rng.integers(0, 5, size=groups.sum()).astype(np.float64)
    zg = z[: groups.sum()]
    yield ("listwise identity+4*sigmoid",
           serial_loss(package.ListwiseLoss, Identity() + 4 * Sigmoid(1.0, 0.5)).bind(relevance, groups), zg)
    yield "listwise sinh", serial_loss(package.ListwiseLoss, Sinh(0.0, 2.0)).bind(relevance, groups), zg
    small = np.full(n // 20, 20)[: max(1, n // 200)]
    yield ("pairwise identity k=16", serial_loss(package.PairwiseLoss).bind(relevance[: small.sum()], small),
           zg[: small.sum()])
    k = 10
    labels = rng.integers(0, k, size=n // k)
    yield ("multiclass k=10", serial_loss(package.MulticlassLoss, Identity() + Sigmoid()).bind(labels, k),
           z[: (n // k) * k].reshape(-1, k))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cases", nargs="*", default=None, help="substrings selecting the cases (default all)")
    args = parser.parse_args(argv)
    import selboost

    with tempfile.TemporaryDirectory() as folder:
        base = load_base(args.base, folder)
        print(f"new: {Path(selboost.__file__).parent}  base: {args.base}  rows: {args.rows}  "
              f"repeats: {args.repeats} (serial kernels, float32 outputs, best of the interleaved rounds)")
        print("| loss | new ns/sample | base ns/sample | new / base |\n|---|---|---|---|")
        for (name, new, z), (_, old, _) in zip(cases(selboost, args.rows), cases(base, args.rows)):
            if args.cases and not any(part in name for part in args.cases):
                continue
            outputs = [(np.empty(new.shape, np.float32), np.empty(new.shape, np.float32)) for _ in range(2)]
            new_call, old_call = serial_call(new), serial_call(old)
            calls = [lambda: new_call(z, *outputs[0]), lambda: old_call(z, *outputs[1])]
            for call in calls:  # compile and warm up
                call()
                call()
            best = [np.inf, np.inf]
            for _ in range(args.repeats):
                for k, call in enumerate(calls):
                    start = time.perf_counter()
                    call()
                    best[k] = min(best[k], time.perf_counter() - start)
            rows = z.size
            print(f"| {name} | {best[0] / rows * 1e9:.2f} | {best[1] / rows * 1e9:.2f} | {best[0] / best[1]:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
