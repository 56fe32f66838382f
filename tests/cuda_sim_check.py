"""Checks of the CUDA kernels that run in a process of their own (run by tests/test_cuda.py).

    python tests/cuda_sim_check.py sim   # under Numba's CUDA simulator: GPU results == CPU results
    python tests/cuda_sim_check.py gpu   # the same checks on a real GPU (prints SKIP without one)
    python tests/cuda_sim_check.py ptx   # compile every kernel to PTX with libNVVM, no GPU needed
    python tests/cuda_sim_check.py driver  # selboost.xgboost_train's device margins: under the simulator
                                           # with a CPU booster, on a GPU with XGBoost on the device

``sim`` must start with NUMBA_ENABLE_CUDASIM=1 in the environment (Numba reads it at import). Each
mode prints one line per case and exits non-zero on the first mismatch.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: the simulator runs the kernels' Python source with the CPU's math library; a real GPU uses
#: libdevice, whose exp and log may differ from the CPU's in the last bit, amplified where terms cancel
RTOL = {"sim": 1e-12, "gpu": 1e-10}
_rtol = RTOL["sim"]


def _links():
    from selboost import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh

    return {
        "identity": Identity(),
        "sigmoid": Sigmoid(center=0.5, scale=0.3),
        "sinh": Sinh(center=-0.2, scale=0.7),
        "exp+": Exp(center=0.3, scale=0.8),
        "exp-": Exp(center=0.0, scale=-1.5),
        "piecewise": PiecewiseLinear(knots=[-1.0, 0.5, 2.0], slopes=[0.5, 1.0, 4.0, 0.25]),
        # two curved terms of one kind: the kernels of the sums in the CPU tests, so no CPU kernel is
        # compiled for this check alone
        "sum": Identity() + 9 * Sigmoid(center=1.0, scale=0.5) + 0.5 * Sigmoid(center=0.0, scale=2.0),
    }


def _scores(rng, n, extreme=True):
    """Scores of moderate size with a few extreme ones (|z| up to 1e6) and exact ties."""
    z = rng.normal(scale=1.5, size=n)
    if extreme and n >= 6:
        z[rng.choice(n, size=4, replace=False)] = [1e6, -1e6, 3e4, -750.0]
    if n >= 4:
        z[1] = z[0]  # an exact tie
    return z


def _softmax_term_scales(bound, raw):
    """Magnitudes of the terms that each softmax gradient / hessian sums, from NumPy.

    grad_i = w phi'(p_i - q_i) cancels where p_i is close to q_i; a different (equally exact) order of
    the softmax sum then changes the last bits of p_i, so relative errors are measured against the
    terms, w |phi'| max(p, q) and w (phi'^2 p (1 - p) + |phi''| max(p, q)), not the difference.
    """
    link = bound.spec.transform
    z = np.asarray(raw, dtype=np.float64).ravel()
    phi, dphi, d2phi = link.h(z), link.dh(z), link.d2h(z)
    pointer = bound.group_ptr
    p = np.empty_like(z)
    for g in range(pointer.size - 1):
        part = phi[pointer[g]:pointer[g + 1]]
        e = np.exp(part - part.max())
        p[pointer[g]:pointer[g + 1]] = e / e.sum()
    weight = bound.weight if bound.weight.size else np.ones_like(z)
    big = np.maximum(p, bound.q)
    grad_scale = weight * np.abs(dphi) * big
    hess_scale = weight * (dphi * dphi * p * (1.0 - p) + np.abs(d2phi) * big)
    return grad_scale.reshape(bound.shape), hess_scale.reshape(bound.shape)


def _to_host(array):
    """A device result as a NumPy array: CuPy arrays where CuPy is installed, else Numba's."""
    return array.copy_to_host() if hasattr(array, "copy_to_host") else array.get()


def _compare(name, got, expected, rtol=None, term_scale=None):
    rtol = _rtol if rtol is None else rtol
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"{name}: shape {got.shape} != {expected.shape}")
    if not np.isfinite(got).all():
        raise AssertionError(f"{name}: non-finite GPU values")
    scale = np.abs(expected)
    if term_scale is not None:
        scale = np.maximum(scale, term_scale)
    err = np.abs(got - expected)
    # elementwise relative error; where the CPU value is exactly 0 the GPU value must be 0 too
    rel = np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), np.where(err > 0, np.inf, 0.0))
    worst = float(rel.max())
    if worst > rtol:
        i = int(np.argmax(rel))
        raise AssertionError(
            f"{name}: relative error {worst:.3g} > {rtol:g} at flat index {i}: "
            f"gpu {got.ravel()[i]!r} cpu {expected.ravel()[i]!r}"
        )
    return worst


def _check(name, bound, raw, float32=False, **options):
    """GPU float64 gradients == CPU float64 gradients (and float32 outputs == CPU float32 outputs)."""
    from numba import cuda

    from selboost import cuda as sbcuda

    started = time.perf_counter()
    expected_g, expected_h = bound.gradient_hessian(raw)
    device = sbcuda.to_device(bound, dtype=np.float64, **options)
    grad, hess = device.gradient_hessian(raw)
    grad_scale = hess_scale = None
    if hasattr(bound, "q"):
        grad_scale, hess_scale = _softmax_term_scales(bound, raw)
    worst = max(_compare(f"{name} grad", _to_host(grad), expected_g, term_scale=grad_scale),
                _compare(f"{name} hess", _to_host(hess), expected_h, term_scale=hess_scale))
    grad_again, _ = device.gradient_hessian(raw)
    assert grad_again is grad, "gradient buffers must be allocated once and reused"
    if float32:
        # device input, float32 scores and outputs: what XGBoost hands over and reads back
        raw32 = np.asarray(raw, dtype=np.float32)
        expected_g32 = np.empty(bound.shape, np.float32)
        expected_h32 = np.empty(bound.shape, np.float32)
        bound.gradient_hessian(raw32.astype(np.float64), grad_out=expected_g32, hess_out=expected_h32)
        device32 = sbcuda.to_device(bound, **options)
        grad32, hess32 = device32.gradient_hessian(cuda.to_device(raw32))
        assert grad32.dtype == np.float32 and grad32.shape == bound.shape, (grad32.dtype, grad32.shape)
        _compare(f"{name} grad float32", _to_host(grad32), expected_g32, rtol=1e-6,
                 term_scale=None if grad_scale is None else _softmax_term_scales(bound, raw32)[0])
        _compare(f"{name} hess float32", _to_host(hess32), expected_h32, rtol=1e-6,
                 term_scale=None if hess_scale is None else _softmax_term_scales(bound, raw32)[1])
    print(f"ok {name}: max relative error {worst:.2g} ({time.perf_counter() - started:.1f} s)", flush=True)


def _check_extreme(name, bound, raw, **options):
    """Scores near the float64 limit: the GPU gives the CPU's values, no NaN, and the same infinities
    (an overflowing h(z) gives an infinite gradient on both)."""
    from selboost import cuda as sbcuda

    expected = bound.gradient_hessian(raw)
    device = sbcuda.to_device(bound, dtype=np.float64, **options)
    for what, got, want in zip(("grad", "hess"), device.gradient_hessian(raw), expected):
        got = _to_host(got)
        if np.isnan(got).any() or np.isnan(want).any():
            raise AssertionError(f"{name} {what}: NaN (gpu {got!r}, cpu {want!r})")
        finite = np.isfinite(want)
        if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(got[~finite], want[~finite]):
            raise AssertionError(f"{name} {what}: infinities differ (gpu {got!r}, cpu {want!r})")
        _compare(f"{name} {what}", got[finite], want[finite])
    print(f"ok {name}", flush=True)


def run_checks(simulated):
    """Every loss kind on the (simulated or real) GPU against the CPU kernels: on a GPU every case below;
    under the simulator, which runs each thread's Python, one case per kernel path (the scalar kernel,
    the softmax per thread and per block, the pairwise kernel with selected and with all pairs, the
    limits of extreme scores through each, the errors)."""
    from numba.core import config

    if simulated and not config.ENABLE_CUDASIM:
        raise SystemExit("run with NUMBA_ENABLE_CUDASIM=1 in the environment")
    if not simulated and config.ENABLE_CUDASIM:
        raise SystemExit("the GPU checks need the real CUDA target: unset NUMBA_ENABLE_CUDASIM")
    from selboost import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, Sigmoid
    from selboost import cuda as sbcuda

    global _rtol
    _rtol = RTOL["sim" if simulated else "gpu"]
    if not simulated and not sbcuda.is_available():
        print("SKIP no usable CUDA GPU")
        return
    device_name = sbcuda.require_gpu()
    assert sbcuda.is_simulator() == simulated and (device_name == "CUDA simulator") == simulated
    print(f"device: {device_name}")
    rng = np.random.default_rng(20261122)
    links = _links()
    every_case = not simulated

    def cases(items, one_per_path):
        """All of ``items`` on a GPU; under the simulator the items at the indices ``one_per_path``."""
        items = list(items)
        return items if every_case else [items[i] for i in one_per_path]

    # ---- scalar: every link, weights, extreme scores, targets in the link's range
    n = 40
    for name, link in cases(links.items(), [-1]):
        y = rng.normal(size=n)
        weight = rng.uniform(0.0, 2.0, size=n) if name != "identity" else None
        _check(f"selective {name}", SelectiveLoss(link, hess_min=1e-4).bind(y, weight), _scores(rng, n),
               float32=name == "sum")
    t = rng.uniform(0.0, 1.0, size=n)
    t[:3] = [0.0, 1.0, 0.0]
    if every_case:
        _check("selective logistic target=link", SelectiveLoss(0.25 * Sigmoid(), target="link").bind(t),
               _scores(rng, n))

    # ---- listwise: groups of 1, > block size, all-zero gains, both kernels (thread / block per group)
    sizes = np.array([1, 2, 5, 19, 3, 7])  # 19 > block_size 8; the group of 3 has zero gains
    n = int(sizes.sum())
    relevance = rng.integers(0, 4, size=n).astype(np.float64)
    relevance[8:27][:3] = [3, 0, 2]
    relevance[27:30] = 0.0
    group_weight = rng.uniform(0.5, 2.0, size=sizes.size)
    sample_weight = rng.uniform(0.0, 2.0, size=n)
    teacher = rng.normal(size=n)
    # under the simulator the weighted sum (Gauss-Newton): a CPU kernel variant the CPU tests compile
    for number, name in cases(enumerate(("identity", "sigmoid", "sinh", "piecewise", "sum")), [4]):
        hess = ("gauss-newton", "exact")[number % 2]
        loss = ListwiseLoss(links[name], hess=hess)
        bound = loss.bind(relevance, sizes, sample_weight=sample_weight, group_weight=group_weight)
        raw = _scores(rng, n)
        _check(f"listwise {name} {hess} threads", bound, raw, small_group=64)
        if name in ("identity", "sinh", "sum"):
            _check(f"listwise {name} {hess} blocks", bound, raw, float32=name == "sum", block_size=8,
                   small_group=0)
    if every_case:
        distill = ListwiseLoss(links["sum"], target="score").bind(teacher, sizes)
        _check("listwise distillation blocks", distill, _scores(rng, n), block_size=8, small_group=0)
        _check("listwise distillation threads", distill, _scores(rng, n))
        # the default block size with a group larger than it
        big = np.array([150, 1, 4])
        rel_big = rng.integers(0, 5, size=int(big.sum())).astype(np.float64)
        bound = ListwiseLoss(links["sigmoid"], hess="exact").bind(rel_big, big, group_weight=[1.0, 2.0, 3.0])
        _check("listwise group of 150 > block 128", bound, _scores(rng, int(big.sum())), small_group=0)

    # ---- multi-class: class labels and probability rows, weights, k = 3 and k = 40 (> block 8)
    labels = rng.integers(0, 3, size=12)
    for name in cases(("identity", "sinh", "sum"), []):  # the listwise cases ran these kernels
        bound = MulticlassLoss(links[name], hess="exact").bind(labels, 3, rng.uniform(0.1, 2.0, size=12))
        raw = _scores(rng, 36).reshape(12, 3)
        _check(f"multiclass {name} threads", bound, raw, float32=name == "sum")
    if every_case:
        _check("multiclass sum blocks", bound, raw, block_size=4, small_group=0)
    probabilities = rng.dirichlet(np.ones(40), size=3)
    bound = MulticlassLoss(links["sigmoid"]).bind(probabilities)
    _check("multiclass k=40 blocks", bound, _scores(rng, 120).reshape(3, 40), block_size=8, small_group=0)

    # ---- pairwise: the CPU's exact pair set (k = 1, 2, 16, all), ties, degenerate groups
    sizes = np.array([1, 2, 6, 13, 4, 21])  # 13 and 21 > block_size 8
    n = int(sizes.sum())
    relevance = rng.integers(0, 4, size=n).astype(np.float64)
    relevance[9:13] = 1.0  # a group with a single relevance level (no pairs)
    relevance[-21:-15] = [2, 2, 2, 0, 0, 3]  # relevance ties across the group
    weight = rng.uniform(0.2, 2.0, size=n)
    pair_cases = (("identity", 1, "gauss-newton"), ("sigmoid", 2, "exact"), ("sum", 16, "gauss-newton"),
                  ("sum", None, "exact"), ("identity", None, "gauss-newton"))
    for name, k, hess in cases(pair_cases, [1, 3]):
        bound = PairwiseLoss(links[name], pairs_per_item=k, hess=hess).bind(
            relevance, sizes, sample_weight=weight
        )
        raw = _scores(rng, n)
        raw[-5:] = raw[-10:-5]  # more exact score ties inside the last group
        _check(f"pairwise {name} k={k} {hess}", bound, raw, float32=k == 16, block_size=8)
    if every_case:
        bound = PairwiseLoss(links["sinh"], pairs_per_item=3).bind(
            rng.integers(0, 5, size=140).astype(np.float64), [140], group_weight=[2.0]
        )
        _check("pairwise group of 140 > block 128", bound, _scores(rng, 140))

    # ---- scores near the float64 limit: the softmax's limit, ties of infinite pairs, infinite gradients
    huge = np.array([1e300, -1e300, 0.5, 1e300, -2.0, -1e300, 1e300, 3.0])
    grades = np.array([2.0, 1.0, 0.0, 0.0, 3.0, 1.0, 2.0, 0.0])
    for name in cases(("identity", "sinh", "exp+", "sum"), [-1]):
        link = links[name]
        _check_extreme(f"extreme selective {name}", SelectiveLoss(link).bind(rng.normal(size=8)), huge)
        listwise = ListwiseLoss(link, hess="exact").bind(grades, [3, 5])
        _check_extreme(f"extreme listwise {name} threads", listwise, huge)
        _check_extreme(f"extreme listwise {name} blocks", listwise, huge, block_size=4, small_group=0)
        _check_extreme(f"extreme pairwise {name}", PairwiseLoss(link, pairs_per_item=2).bind(grades, [3, 5]),
                       huge, block_size=4)
        if every_case:  # the listwise kernels above
            multiclass = MulticlassLoss(link).bind(np.array([0, 1]), 4)
            _check_extreme(f"extreme multiclass {name}", multiclass, huge.reshape(2, 4))

    # ---- errors are clear, not crashes
    device = sbcuda.to_device(SelectiveLoss().bind(np.zeros(5)))
    from numba import cuda

    nan_on_device = cuda.to_device(np.array([0, 1, np.nan, 0, 0.0]))
    inf_on_device = cuda.to_device(np.array([0, 0, 0, 0, -np.inf], dtype=np.float32))
    for bad, error in ((np.zeros(4), ValueError), (np.array([0, 1, np.nan, 0, 0.0]), ValueError),
                       (nan_on_device, ValueError), (inf_on_device, ValueError),
                       (np.array(["a"] * 5), TypeError)):
        try:
            device.gradient_hessian(bad)
        except error as caught:
            print(f"ok error: {caught}")
        else:
            raise AssertionError(f"{bad!r} was accepted")
    for kwargs, error in (({"block_size": 96}, ValueError), ({"dtype": np.int32}, ValueError)):
        try:
            sbcuda.to_device(SelectiveLoss().bind(np.zeros(5)), **kwargs)
        except error as caught:
            print(f"ok error: {caught}")
        else:
            raise AssertionError(f"{kwargs} was accepted")
    try:
        sbcuda.to_device(SelectiveLoss())
    except TypeError as caught:
        print(f"ok error: {caught}")
    else:
        raise AssertionError("an unbound loss was accepted")
    if not simulated:
        _check_real_gpu(rng)
    print("all GPU checks passed")


def _check_real_gpu(rng):
    """On a real GPU: CuPy arrays in and out, and XGBoost trained through device gradients."""
    from selboost import Identity, ListwiseLoss, SelectiveLoss, Sigmoid
    from selboost import cuda as sbcuda

    try:
        import cupy
    except ImportError:
        print("cupy not installed: CuPy and XGBoost checks skipped")
        return
    n = 2000
    y = rng.normal(size=n)
    bound = SelectiveLoss(Identity() + 9 * Sigmoid(1.0, 0.5)).bind(y, rng.uniform(0.5, 2.0, size=n))
    raw = rng.normal(size=n).astype(np.float32)
    device = sbcuda.to_device(bound)
    grad, hess = device.gradient_hessian(cupy.asarray(raw))
    assert isinstance(grad, cupy.ndarray) and grad.dtype == np.float32, type(grad)
    expected_g = np.empty(n, np.float32)
    expected_h = np.empty(n, np.float32)
    bound.gradient_hessian(raw.astype(np.float64), grad_out=expected_g, hess_out=expected_h)
    _compare("cupy input grad", cupy.asnumpy(grad), expected_g, rtol=1e-6)
    _compare("cupy input hess", cupy.asnumpy(hess), expected_h, rtol=1e-6)
    print("ok cupy arrays in and out")
    try:
        import xgboost as xgb
    except ImportError:
        print("xgboost not installed: XGBoost check skipped")
        return
    X = rng.normal(size=(n, 5)).astype(np.float32)
    sizes = np.full(20, 100)
    relevance = rng.integers(0, 4, size=n).astype(np.float64)
    for name, loss_bound, dtrain in (
        ("scalar", bound, xgb.DMatrix(X, label=y)),
        ("listwise", ListwiseLoss().bind(relevance, sizes), xgb.DMatrix(X, label=relevance, group=sizes)),
    ):
        device_loss = sbcuda.to_device(loss_bound)
        params = {"device": "cuda", "tree_method": "hist", "max_depth": 4, "eta": 0.3, "base_score": 0.0}

        def on_gpu(predt, dtrain):
            return device_loss.gradient_hessian(predt)

        def on_cpu(predt, dtrain):
            g32, h32 = np.empty(n, np.float32), np.empty(n, np.float32)
            return loss_bound.gradient_hessian(predt, grad_out=g32, hess_out=h32)

        gpu_pred = xgb.train(params, dtrain, 5, obj=on_gpu).predict(dtrain, output_margin=True)
        cpu_pred = xgb.train(params, dtrain, 5, obj=on_cpu).predict(dtrain, output_margin=True)
        np.testing.assert_allclose(gpu_pred, cpu_pred, rtol=1e-4, atol=1e-4)
        print(f"ok xgboost device=cuda {name}: device gradients == host gradients")


def run_ptx():
    """Compile every kernel to PTX with libNVVM (no GPU needed)."""
    from numba import cuda
    from numba.core import config

    if config.ENABLE_CUDASIM:
        raise SystemExit("the PTX check needs the real CUDA target: unset NUMBA_ENABLE_CUDASIM")
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as error:
        print(f"SKIP libNVVM not found: {' '.join(str(error).split())}")
        return
    cc = (7, 5)
    # Device functions (the register_jitable link math, the block reduction) are compiled for "the
    # current device", which Numba asks the driver for; without a GPU, state the target instead.
    if not cuda.is_available():
        from numba.cuda import dispatcher

        class _TargetDevice:
            compute_capability = cc

        dispatcher.get_current_device = lambda: _TargetDevice()

    from selboost import cuda as sbcuda

    functions = sbcuda.kernel_functions()
    # float32 scores and outputs: what XGBoost hands over and reads back (float64 for the scalar one)
    wanted = [(name, "float32") for name in functions] + [("scalar_grad_hess", "float64")]
    for name, raw_dtype in wanted:
        signature = sbcuda.kernel_signatures(raw_dtype, raw_dtype)[name]
        started = time.perf_counter()
        ptx, _ = cuda.compile_ptx(functions[name], signature, cc=cc)
        assert ".entry" in ptx and f"sm_{cc[0]}{cc[1]}" in ptx, ptx[:500]
        # the link math and libdevice's exp are compiled in: nothing is left to resolve at load
        assert ".extern" not in ptx, f"{name}: unresolved functions in the PTX"
        print(f"ok ptx {name} ({raw_dtype} scores): {len(ptx)} characters "
              f"({time.perf_counter() - started:.1f} s)", flush=True)
    print("all kernels compiled to PTX")


def _driver_cases(rng, n):
    """(kind, loss, params, DMatrix fields, X) of every loss kind, with weights and base margins."""
    from selboost import Identity, ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, Sigmoid

    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = X[:, 0] + 0.5 * rng.normal(size=n)
    relevance = np.clip(np.floor(X[:, 1] + 2 + 0.5 * rng.normal(size=n)), 0, 4)
    classes = np.digitize(X[:, 2], [-0.5, 0.5]).astype(float)
    sizes = np.full(n // 40, 40)
    group_weight = rng.uniform(0.5, 2.0, sizes.size)
    base = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "verbosity": 0, "nthread": 1}
    return [
        ("selective", SelectiveLoss(Identity() + 4 * Sigmoid(1.0, 0.5)), dict(base, base_score=0.2),
         dict(label=y, weight=rng.uniform(0.5, 2.0, n), base_margin=rng.normal(size=n)), X),
        ("listwise", ListwiseLoss(), dict(base, base_score=0.0),
         dict(label=relevance, group=sizes, weight=group_weight), X),
        ("pairwise", PairwiseLoss(pairs_per_item=3), dict(base, base_score=0.0),
         dict(label=relevance, group=sizes, weight=group_weight), X),
        ("multiclass", MulticlassLoss(), dict(base, num_class=3),
         dict(label=classes, base_margin=rng.normal(size=(n, 3))), X),
    ]


def run_driver(simulated):
    """selboost.xgboost_train's device margins.

    Simulator: the device bookkeeping (margins in a device array, gradients from the CUDA kernels, the
    round's trees added on the device) with a CPU booster; after every round the margins must equal
    XGBoost's own bit for bit, and the model xgboost.train's with the CPU objective.
    GPU: selboost.xgboost_train with device="cuda" and CuPy features against xgboost.train with the same
    device objective (host margins): the same trees, and the estimators' device="cuda" path.
    """
    try:
        import xgboost as xgb
    except ImportError:
        print("SKIP: xgboost is not installed")
        return
    from selboost import cuda as sbcuda
    from selboost import xgboost_objective
    from selboost.engines import _xgboost_train as driver

    if not simulated:
        if not sbcuda.is_available():
            print(f"SKIP: no usable GPU: {sbcuda._gpu_problem()}")
            return
        if sbcuda._cupy() is None:
            print("SKIP: CuPy is not installed (device margins need it)")
            return
    rng = np.random.default_rng(7)
    # the simulator runs each GPU thread's Python: a small problem, two rounds, every loss family once
    rounds = 2 if simulated else 4
    for kind, loss, params, fields, X in _driver_cases(rng, n=80 if simulated else 800):
        if simulated:
            dtrain = xgb.DMatrix(X, **fields)
            booster = xgb.Booster(params, [dtrain])
            keeper = driver.margin_keeper(booster, dtrain, loss, X, gradient_device="cuda")
            assert isinstance(keeper, driver.DeviceMargins), type(keeper)
            assert type(keeper.margins).__name__ == "FakeCUDAArray", type(keeper.margins)
            for i in range(rounds):
                keeper.boost(booster, dtrain, i)
                expected = booster.predict(dtrain, output_margin=True, training=True)
                if not np.array_equal(keeper.host_margins(), expected):
                    raise AssertionError(f"{kind}: device margins differ from XGBoost's after round {i}")
            reference = xgb.train(params, xgb.DMatrix(X, **fields), rounds, obj=xgboost_objective(loss))
            got = booster.predict(dtrain, output_margin=True)
            want = reference.predict(dtrain, output_margin=True)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            print(f"ok device margins {kind}: equal to XGBoost's every round; trees equal to the CPU "
                  f"objective's: {booster.get_dump() == reference.get_dump()}")
        else:
            import cupy

            gpu = dict(params, device="cuda")
            got = driver.xgboost_train(gpu, xgb.DMatrix(X, **fields), 6, loss=loss, X=cupy.asarray(X), verbose_eval=False)
            reference = xgb.train(gpu, xgb.DMatrix(X, **fields), 6, obj=xgboost_objective(loss, device="cuda"))
            data = xgb.DMatrix(X, **fields)
            np.testing.assert_allclose(got.predict(data, output_margin=True),
                                       reference.predict(data, output_margin=True), rtol=1e-5, atol=1e-5)
            same = got.get_dump(dump_format="json") == reference.get_dump(dump_format="json")
            print(f"ok device margins {kind}: device=cuda selboost.xgboost_train == xgboost.train(obj=device "
                  f"objective); trees equal: {same}")
            if not same:
                raise AssertionError(f"{kind}: the trees differ from xgboost.train's on the GPU")
    if not simulated:
        from selboost import SelectiveRegressor

        X, y = rng.normal(size=(3000, 5)), rng.normal(size=3000)
        cpu = SelectiveRegressor(n_estimators=5, random_state=0).fit(X, y).predict(X)
        gpu = SelectiveRegressor(n_estimators=5, random_state=0, device="cuda").fit(X, y).predict(X)
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)
        print("ok SelectiveRegressor(device='cuda') through selboost.xgboost_train")
    print("all driver checks passed")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "sim"
    if mode == "sim":
        run_checks(simulated=True)
    elif mode == "gpu":
        run_checks(simulated=False)
    elif mode == "ptx":
        run_ptx()
    elif mode == "driver":
        from selboost import cuda as _sbcuda

        run_driver(simulated=_sbcuda.is_simulator())
    else:
        raise SystemExit(f"unknown mode {mode!r}: use 'sim', 'gpu', 'ptx' or 'driver'")
