"""What a vectorisable exp would buy the scalar sigmoid kernel: libm ``math.exp`` against a polynomial exp.

    python benchmarks/bench_simd_exp.py --rows 10000000 --repeats 7

Numba here has no SVML, so ``math.exp`` is a scalar libm call per element and the kernels' loops do not
vectorise. This script times a sigmoid-link gradient/hessian loop (one exp per sample, float32 output)
with ``math.exp`` and with ``polynomial_exp``: Cody-Waite range reduction, a degree-13 Taylor polynomial
on |r| <= ln2/2 and 2^n built by a bit-cast intrinsic, which LLVM can vectorise. It also reports the
polynomial's worst relative error against ``numpy.exp`` on [-700, 700]. It is a measurement for the next
kernel step, not used by the package.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
FASTMATH = {"contract", "reassoc", "arcp", "nsz"}


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret an int64 as a float64 (2^n from its exponent bits) without a call."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(inline="always", fastmath={"contract"})
def polynomial_exp(x):
    """e^x for x clipped to [-708, 709]: x = n ln2 + r, e^x = 2^n e^r, e^r by its Taylor series."""
    x = min(max(x, -708.0), 709.0)
    n = math.floor(x * LOG2E + 0.5)
    r = x - n * LN2_HI - n * LN2_LO
    p = 1.0 / 479001600.0
    for c in (1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040, 1 / 720, 1 / 120, 1 / 24,
              1 / 6, 0.5, 1.0, 1.0):
        p = c + r * p
    return p * _bits_to_float((np.int64(n) + 1023) << 52)


def _libm_kernel(z, target, center, scale, grad, hess):
    for i in prange(z.shape[0]):
        u = (z[i] - center) / scale
        if u >= 0.0:
            e = math.exp(-u)
            p = 1.0 / (1.0 + e)
        else:
            e = math.exp(u)
            p = e / (1.0 + e)
        grad[i] = 4.0 * scale * p - target[i]
        hess[i] = max(4.0 * p * (1.0 - p), 1e-6)


def _polynomial_kernel(z, target, center, scale, grad, hess):
    for i in prange(z.shape[0]):
        u = (z[i] - center) / scale
        e = polynomial_exp(-abs(u))
        inverse = 1.0 / (1.0 + e)
        p = inverse if u >= 0.0 else e * inverse
        grad[i] = 4.0 * scale * p - target[i]
        hess[i] = max(4.0 * p * (1.0 - p), 1e-6)


@njit
def _polynomial_exp_array(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = polynomial_exp(x[i])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    xs = np.linspace(-700.0, 700.0, 200_001)
    error = np.max(np.abs(_polynomial_exp_array(xs) - np.exp(xs)) / np.exp(xs))
    print(f"polynomial exp: worst relative error on [-700, 700] = {error:.2e}")
    rng = np.random.default_rng(0)
    z = 5.0 * rng.normal(size=args.rows)
    target = rng.normal(size=args.rows)
    grad = np.empty(args.rows, np.float32)
    hess = np.empty(args.rows, np.float32)
    print("| exp | parallel | M samples/s |")
    print("|---|---|---|")
    for name, source in (("libm math.exp", _libm_kernel), ("polynomial", _polynomial_kernel)):
        for parallel in (False, True):
            kernel = njit(fastmath=FASTMATH, parallel=parallel)(source)
            kernel(z, target, 1.0, 0.5, grad, hess)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                kernel(z, target, 1.0, 0.5, grad, hess)
                times.append(time.perf_counter() - start)
            print(f"| {name} | {parallel} | {args.rows / min(times) / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
