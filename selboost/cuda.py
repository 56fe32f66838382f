"""CUDA kernels for every loss kind, and bound losses that keep their data on the GPU.

Usage with XGBoost (``device="cuda"``)::

    from selboost import SelectiveLoss, Sigmoid, Identity
    from selboost import cuda as sbcuda

    sbcuda.require_gpu()                               # RuntimeError naming what is missing
    bound = SelectiveLoss(Identity() + 9 * Sigmoid(2.0, 0.5)).bind(y, sample_weight=w)
    device_loss = sbcuda.to_device(bound)              # labels, weights, groups copied once

    def objective(predt, dtrain):
        return device_loss.gradient_hessian(predt)     # float32 device arrays, reused every round

``to_device`` accepts every bound loss of ``selboost.losses`` (scalar, listwise, pairwise, multi-class).
``gradient_hessian`` takes host NumPy arrays or device arrays (anything exposing
``__cuda_array_interface__``) and returns device arrays: CuPy arrays when CuPy is importable,
otherwise Numba device arrays; XGBoost accepts both.

The kernels call the same per-element source as the CPU kernels: the functions of
``selboost._elementwise`` (the link mathematics, each loss kind's per-item step, its rule for degenerate
groups and the pair selection), their very code objects compiled as CUDA device functions, so the two
cannot drift apart; they reproduce the CPU results (``selboost._kernels``) to rounding:

* scalar: one thread per sample, ``chain_rule_step``: ``grad = w (h(z) - h(y))``,
  ``hess = w max(h'(z), hess_min)``;
* composite softmax (listwise groups, and multi-class rows of k): per group ``p = softmax(phi(z))``,
  then ``softmax_item_step`` per item: ``grad = w phi' (p - q)``, ``hess = w phi'^2 p (1 - p)
  [+ phi'' (p - q)]``. Groups of at most ``small_group`` rows are handled one thread per group (the
  CPU loop as it is); larger ones one block per group, the max and the sums reduced in shared memory,
  so a group may be of any size, larger than the block included;
* pairwise: one thread per group, ``pairwise_group_grad_hess``: the CPU's own pair selection (a stable
  merge sort in scratch arrays, each item against the ``pairs_per_item`` best-scored items of lower
  relevance) and its sums, in the same order.

A group of one item, or whose targets sum to 0, gets zero gradient and hessian, as on the CPU
(``softmax_group_is_degenerate``).

Importing this module needs Numba's CUDA target (``numba.cuda``, built into Numba up to its
deprecation, or the ``numba-cuda`` package) but no GPU: the kernels compile on first use. Under
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported) everything runs on
the CPU in plain Python, which is how the kernels are tested without a GPU.
"""

from __future__ import annotations

import math
import threading
import types

import numpy as np

try:
    from numba import cuda
    from numba.core import config as _numba_config
except Exception as error:  # pragma: no cover - depends on the installation
    cuda = None
    _IMPORT_ERROR = error
else:
    _IMPORT_ERROR = None

from selboost import _elementwise
from selboost._validation import raise_nonfinite

__all__ = [
    "DeviceLoss",
    "add_into",
    "is_available",
    "is_simulator",
    "kernel_functions",
    "kernel_signatures",
    "require_gpu",
    "to_device",
]

#: default threads per block of the per-group kernels and of the scalar kernel.
DEFAULT_BLOCK_SIZE = 128
#: groups up to this size are handled one thread per group (multi-class rows, short query lists).
DEFAULT_SMALL_GROUP = 32
_SCALAR_BLOCK = 256


# ================================================================ availability


def is_simulator() -> bool:
    """True when Numba's CUDA simulator is enabled (``NUMBA_ENABLE_CUDASIM=1``)."""
    return cuda is not None and bool(_numba_config.ENABLE_CUDASIM)


def _gpu_problem():
    """None when a GPU can run the kernels, else a sentence saying what is missing."""
    if cuda is None:
        return (
            f"Numba's CUDA target cannot be imported ({_IMPORT_ERROR!r}); install the GPU extra: "
            "pip install 'selboost[gpu]'"
        )
    if is_simulator():
        return None
    try:
        available = cuda.is_available()
    except Exception as error:  # pragma: no cover - depends on the installation
        return f"the CUDA driver could not be initialised: {error}"
    if not available:
        try:
            cuda.current_context()
        except Exception as error:
            detail = " ".join(str(error).split())
        else:  # pragma: no cover - is_available() and a context disagree
            detail = "no CUDA device was found"
        return (
            f"no usable CUDA GPU: {detail} (a machine with an NVIDIA GPU and driver is needed; "
            "CPU losses work without one)"
        )
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as error:  # pragma: no cover - depends on the installation
        return (
            f"the CUDA compiler library libNVVM was not found ({' '.join(str(error).split())}); "
            "install it with pip install 'selboost[gpu]' or point CUDA_HOME at a CUDA toolkit"
        )
    return _compile_problem()


_COMPILE_CHECKED = []


def _compile_problem():
    """None when a trivial kernel compiles, else why not; checked once per process.

    A driver and libNVVM are not enough: numba-cuda 0.30.4, for one, cannot load its own typing
    registries under NumPy 2.5 (it registers ``np.row_stack``, which NumPy 2.5 removed), and that
    would otherwise surface as a traceback from deep inside the first kernel launch.
    """
    if not _COMPILE_CHECKED:
        def _probe(out):
            out[0] = 1.0

        try:
            cuda.jit("void(float32[:])")(_probe)
        except Exception as error:  # pragma: no cover - depends on the installation
            detail = " ".join(f"{type(error).__name__}: {error}".split())
            hint = ""
            if "row_stack" in detail:
                hint = f" (this numba-cuda does not support NumPy {np.__version__}: install 'numpy<2.5')"
            _COMPILE_CHECKED.append(f"Numba's CUDA target cannot compile a kernel: {detail}{hint}")
        else:
            _COMPILE_CHECKED.append(None)
    return _COMPILE_CHECKED[0]


def is_available() -> bool:
    """True when the CUDA kernels can run here (a GPU, its driver and libNVVM, or the simulator)."""
    return _gpu_problem() is None


def require_gpu() -> str:
    """Check that the CUDA kernels can run; returns the device's name.

    Raises ``RuntimeError`` saying what is missing: Numba's CUDA target, the driver or a GPU, or
    the libNVVM compiler library.
    """
    problem = _gpu_problem()
    if problem is not None:
        raise RuntimeError(f"selboost.cuda: {problem}")
    if is_simulator():
        return "CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


# ================================================================ kernels


def _check_block_size(block_size):
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be an int, got {block_size!r}")
    block_size = int(block_size)
    if block_size < 1 or block_size > 1024 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two in [1, 1024], got {block_size}")
    return block_size


def _device_functions():
    """Every function of ``selboost._elementwise`` compiled as a CUDA device function, by name.

    The functions are the module's own code objects, run with a copy of its globals in which each
    of them names its device version, so the GPU evaluates exactly the CPU's per-element source.
    They are not called through their ``register_jitable`` registration because the NVIDIA
    ``numba-cuda`` target (0.30 with Numba 0.68) fails to compile functions registered with
    ``inline="always"``, which the CPU kernels use for speed.
    """
    namespace = dict(vars(_elementwise))
    functions = {
        name: value
        for name, value in vars(_elementwise).items()
        if isinstance(value, types.FunctionType) and value.__module__ == _elementwise.__name__
    }
    for name, function in functions.items():
        clone = types.FunctionType(function.__code__, namespace, name, function.__defaults__,
                                   function.__closure__)
        clone.__doc__ = function.__doc__
        namespace[name] = cuda.jit(device=True)(clone)
    # The CPU's fast_exp builds 2^n with an LLVM bit-cast intrinsic of the CPU target; on the GPU
    # libdevice's exp is already vectorised arithmetic.
    namespace["fast_exp"] = cuda.jit(device=True)(_libdevice_exp)
    namespace["fast_exp_expm1"] = cuda.jit(device=True)(_libdevice_exp_expm1)
    return {name: namespace[name] for name in functions}


def _libdevice_exp(x):
    return math.exp(x)


def _libdevice_exp_expm1(x):
    return math.exp(x), math.expm1(x)


# The kernels spell max(a, b) out: Numba 0.66 to 0.68's built-in CUDA target fails to compile the
# two-argument builtin (numba/numba#10753); the CPU kernels' max picks the same value.


def kernel_functions(block_size=DEFAULT_BLOCK_SIZE):
    """The Python sources of the CUDA kernels, by name, before ``cuda.jit``.

    ``block_size`` is the size of the shared-memory reduction buffer (the most threads a block of the
    softmax kernel may have). Exposed so that the kernels can be compiled ahead of time, for example
    to PTX with ``numba.cuda.compile_ptx`` on a machine without a GPU.
    """
    block_size = _check_block_size(block_size)
    if cuda is None:
        raise RuntimeError(f"selboost.cuda: {_gpu_problem()}")
    float64 = np.float64
    device = _device_functions()
    link_values = device["link_values"]
    softmax_exponent = device["softmax_exponent"]
    chain_rule_step = device["chain_rule_step"]
    softmax_item_step = device["softmax_item_step"]
    softmax_group_is_degenerate = device["softmax_group_is_degenerate"]
    pairwise_group_grad_hess = device["pairwise_group_grad_hess"]

    def block_reduce(buffer, value, take_max):
        """max (take_max) or sum of ``value`` over the block; every thread gets the result."""
        tid = cuda.threadIdx.x
        buffer[tid] = value
        cuda.syncthreads()
        stride = cuda.blockDim.x // 2
        while stride > 0:
            if tid < stride:
                if take_max:
                    if buffer[tid + stride] > buffer[tid]:
                        buffer[tid] = buffer[tid + stride]
                else:
                    buffer[tid] = buffer[tid] + buffer[tid + stride]
            cuda.syncthreads()
            stride //= 2
        result = buffer[0]
        cuda.syncthreads()  # the buffer is reused by the next reduction
        return result

    device_reduce = cuda.jit(device=True)(block_reduce)

    def scalar_grad_hess(components, table, z, target_h, weight, weighted, hess_min, grad_out, hess_out):
        """grad = w (h(z) - target_h), hess = w max(h'(z), hess_min), one thread per sample."""
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for i in range(start, z.shape[0], step):
            h, dh, _ = link_values(components, table, z[i])
            grad, hess = chain_rule_step(1.0, 0.0, h - target_h[i], dh, False, weight[i] if weighted else 1.0,
                                         hess_min)
            grad_out[i] = grad
            hess_out[i] = hess

    def softmax_grad_hess_threads(
        components, table, z, q, group_ptr, weight, weighted, exact, hess_min,
        phi_work, dphi_work, d2phi_work, grad_out, hess_out,
    ):
        """Composite softmax, one thread per group (the CPU kernel's loop as it is)."""
        first = cuda.grid(1)
        step = cuda.gridsize(1)
        for g in range(first, group_ptr.shape[0] - 1, step):
            start = group_ptr[g]
            stop = group_ptr[g + 1]
            q_sum = 0.0
            for i in range(start, stop):
                q_sum += q[i]
            if softmax_group_is_degenerate(stop - start, q_sum):
                for i in range(start, stop):
                    grad_out[i] = 0.0
                    hess_out[i] = 0.0
                continue
            top = -math.inf
            for i in range(start, stop):
                phi, dphi, d2phi = link_values(components, table, z[i])
                phi_work[i] = phi
                dphi_work[i] = dphi
                d2phi_work[i] = d2phi
                if phi > top:
                    top = phi
            total = 0.0
            for i in range(start, stop):
                e = math.exp(softmax_exponent(phi_work[i], top))
                phi_work[i] = e
                total += e
            for i in range(start, stop):
                grad, hess = softmax_item_step(phi_work[i] / total, q[i], dphi_work[i], d2phi_work[i], exact,
                                               weight[i] if weighted else 1.0, hess_min)
                grad_out[i] = grad
                hess_out[i] = hess

    def softmax_grad_hess_blocks(
        components, table, z, q, group_ptr, weight, weighted, exact, hess_min,
        phi_work, dphi_work, d2phi_work, grad_out, hess_out,
    ):
        """Composite softmax, one block per group; the target sum, the max and the sum of exponentials
        reduced in shared memory."""
        buffer = cuda.shared.array(block_size, float64)
        tid = cuda.threadIdx.x
        threads = cuda.blockDim.x
        for g in range(cuda.blockIdx.x, group_ptr.shape[0] - 1, cuda.gridDim.x):
            start = group_ptr[g]
            stop = group_ptr[g + 1]
            q_sum = 0.0
            for i in range(start + tid, stop, threads):
                q_sum += q[i]
            q_sum = device_reduce(buffer, q_sum, False)
            if softmax_group_is_degenerate(stop - start, q_sum):  # the same for every thread of the block
                for i in range(start + tid, stop, threads):
                    grad_out[i] = 0.0
                    hess_out[i] = 0.0
                continue
            top = -math.inf
            for i in range(start + tid, stop, threads):
                phi, dphi, d2phi = link_values(components, table, z[i])
                phi_work[i] = phi
                dphi_work[i] = dphi
                d2phi_work[i] = d2phi
                if phi > top:
                    top = phi
            top = device_reduce(buffer, top, True)
            total = 0.0
            for i in range(start + tid, stop, threads):
                e = math.exp(softmax_exponent(phi_work[i], top))
                phi_work[i] = e
                total += e
            total = device_reduce(buffer, total, False)
            for i in range(start + tid, stop, threads):
                grad, hess = softmax_item_step(phi_work[i] / total, q[i], dphi_work[i], d2phi_work[i], exact,
                                               weight[i] if weighted else 1.0, hess_min)
                grad_out[i] = grad
                hess_out[i] = hess

    def pairwise_grad_hess(
        components, table, z, relevance, group_ptr, weight, weighted, pairs_per_item, exact, hess_min,
        phi_work, dphi_work, d2phi_work, gphi_work, hphi_work, paired_work, order_work, by_level_work,
        buffer_work, grad_out, hess_out,
    ):
        """Pairwise softplus(-(phi_i - phi_j)) over the CPU's pair set, one thread per group
        (``pairwise_group_grad_hess``, the CPU kernel's own per-group source)."""
        for g in range(cuda.grid(1), group_ptr.shape[0] - 1, cuda.gridsize(1)):
            start = group_ptr[g]
            stop = group_ptr[g + 1]
            for i in range(start, stop):
                phi, dphi, d2phi = link_values(components, table, z[i])
                phi_work[i] = phi
                dphi_work[i] = dphi
                d2phi_work[i] = d2phi
            pairwise_group_grad_hess(phi_work, dphi_work, d2phi_work, relevance, start, stop - start, pairs_per_item,
                                     exact, weight, weighted, hess_min, gphi_work, hphi_work, paired_work,
                                     order_work, by_level_work, buffer_work, grad_out, hess_out)

    def count_nonfinite(z, count):
        """count[0] += the number of NaN or infinite scores (an atomic add only where there is one)."""
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for i in range(start, z.shape[0], step):
            if not math.isfinite(z[i]):
                cuda.atomic.add(count, 0, 1)

    return {
        "scalar_grad_hess": scalar_grad_hess,
        "softmax_grad_hess_threads": softmax_grad_hess_threads,
        "softmax_grad_hess_blocks": softmax_grad_hess_blocks,
        "pairwise_grad_hess": pairwise_grad_hess,
        "count_nonfinite": count_nonfinite,
    }


def kernel_signatures(raw_dtype="float64", out_dtype="float32"):
    """Numba signatures of the kernels of ``kernel_functions`` for raw scores and outputs of these dtypes."""
    z = f"{raw_dtype}[::1]"
    out = f"{out_dtype}[::1]"
    f64 = "float64[::1]"
    links = "float64[:, ::1], float64[::1]"
    return {
        "scalar_grad_hess": f"void({links}, {z}, {f64}, {f64}, boolean, float64, {out}, {out})",
        "softmax_grad_hess_threads": (
            f"void({links}, {z}, {f64}, int64[::1], {f64}, boolean, boolean, float64, "
            f"{f64}, {f64}, {f64}, {out}, {out})"
        ),
        "softmax_grad_hess_blocks": (
            f"void({links}, {z}, {f64}, int64[::1], {f64}, boolean, boolean, float64, "
            f"{f64}, {f64}, {f64}, {out}, {out})"
        ),
        "pairwise_grad_hess": (
            f"void({links}, {z}, {f64}, int64[::1], {f64}, boolean, int64, boolean, float64, "
            f"{f64}, {f64}, {f64}, {f64}, {f64}, {f64}, int64[::1], int64[::1], int64[::1], {out}, {out})"
        ),
        "count_nonfinite": f"void({z}, int32[::1])",
    }


_KERNEL_CACHE = {}
_KERNEL_LOCK = threading.Lock()


def _kernels(block_size):
    """``cuda.jit`` dispatchers of the kernels for one block size (compiled lazily, per dtype)."""
    with _KERNEL_LOCK:
        kernels = _KERNEL_CACHE.get(block_size)
        if kernels is None:
            # cache=False: the kernels are closures over the block size, compiled once per process
            kernels = {
                name: cuda.jit(function, cache=False, fastmath=False)
                for name, function in kernel_functions(block_size).items()
            }
            _KERNEL_CACHE[block_size] = kernels
        return kernels


# ================================================================ device-side bound losses


def _cupy():
    """The cupy module when it works here, else None (always None under the simulator)."""
    if is_simulator():
        return None
    try:
        import cupy

        cupy.empty(1, dtype=np.float32)  # a CuPy built for another CUDA imports but cannot allocate
    except Exception:
        return None
    return cupy


def _next_power_of_two(n):
    return 1 << max(int(n) - 1, 0).bit_length()


class DeviceLoss:
    """A bound loss whose constant data live on the GPU; build it with ``to_device``.

    ``gradient_hessian(raw_prediction)`` returns ``(grad, hess)`` device arrays of ``shape`` and
    ``dtype``, written into buffers allocated once: each call overwrites the arrays returned by the
    previous one. ``host`` is the CPU bound loss it was built from.

    The kernels are chosen as the CPU chooses them, by the bound loss's ``family`` (scalar, softmax,
    pairwise): ``DeviceLoss(bound)`` is an instance of that family's subclass, which copies the
    family's data (``_copy_data``) and launches its kernels (``_launch``).
    """

    #: family -> subclass, filled by the subclasses below
    _FAMILIES: dict = {}
    family = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        DeviceLoss._FAMILIES[cls.family] = cls

    def __new__(cls, bound, *args, **kwargs):
        family = DeviceLoss._FAMILIES.get(getattr(bound, "family", None))
        if family is None:
            raise TypeError(
                "to_device needs a bound loss from selboost.losses (the result of SelectiveLoss, "
                "ListwiseLoss, PairwiseLoss or MulticlassLoss(...).bind(...)), got "
                f"{type(bound).__name__}"
            )
        return super().__new__(family)

    def __init__(self, bound, dtype=np.float32, block_size=DEFAULT_BLOCK_SIZE,
                 small_group=DEFAULT_SMALL_GROUP):
        problem = _gpu_problem()
        if problem is not None:
            raise RuntimeError(f"selboost.cuda: {problem}")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.block_size = _check_block_size(block_size)
        if isinstance(small_group, bool) or not isinstance(small_group, (int, np.integer)) or small_group < 0:
            raise ValueError(f"small_group must be an int >= 0, got {small_group!r}")
        self.small_group = int(small_group)
        self.host = bound
        self.dtype = dtype
        self.shape = tuple(bound.shape)
        self.n_rows = int(np.prod(self.shape))
        self._kernels = _kernels(self.block_size)
        self._nonfinite = cuda.device_array(1, np.int32)
        components, table = bound.components, bound.table
        self._components = cuda.to_device(np.ascontiguousarray(components, dtype=np.float64))
        self._table = cuda.to_device(np.ascontiguousarray(table, dtype=np.float64))
        weight = np.asarray(bound.weight, dtype=np.float64)
        self._weighted = bool(weight.size)
        # a one-element placeholder rather than an empty device array when unweighted
        self._weight = cuda.to_device(weight if weight.size else np.ones(1))
        self._hess_min = float(bound.spec.hess_min)
        self._exact = getattr(bound.spec, "hess", None) == "exact"
        self._copy_data(bound)
        cupy = _cupy()
        if cupy is not None:
            self._grad = cupy.empty(self.shape, dtype=dtype)
            self._hess = cupy.empty(self.shape, dtype=dtype)
            grad_view, hess_view = cuda.as_cuda_array(self._grad), cuda.as_cuda_array(self._hess)
        else:
            self._grad = cuda.device_array(self.shape, dtype=dtype)
            self._hess = cuda.device_array(self.shape, dtype=dtype)
            grad_view, hess_view = self._grad, self._hess
        self._grad_flat = grad_view.reshape(self.n_rows)
        self._hess_flat = hess_view.reshape(self.n_rows)
        self._raw_buffers = {}

    def _copy_data(self, bound):
        """Copy the family's constant data (targets, groups) to the device."""
        raise NotImplementedError

    def _launch(self, z, grad, hess):
        """Run the family's kernel for device scores ``z`` into the flat outputs."""
        raise NotImplementedError

    def _copy_groups(self, bound):
        pointer = np.ascontiguousarray(bound.group_ptr, dtype=np.int64)
        sizes = np.diff(pointer)
        self._n_groups = sizes.size
        self._max_group = int(sizes.max())
        self._group_ptr = cuda.to_device(pointer)

    def __repr__(self):
        return (f"DeviceLoss({self.family}, shape={self.shape}, dtype={self.dtype}, "
                f"host={self.host.spec!r})")

    # ------------------------------------------------------------ inputs

    def _raw(self, raw_prediction):
        """The raw scores as a flat contiguous float32/float64 device array (host input copied once)."""
        if hasattr(raw_prediction, "__cuda_array_interface__"):
            raw = cuda.as_cuda_array(raw_prediction)
            if raw.dtype not in (np.float32, np.float64):
                raise TypeError(f"raw_prediction must be float32 or float64 on the device, got {raw.dtype}")
            if raw.size != self.n_rows or (raw.shape != self.shape and raw.shape != (self.n_rows,)):
                raise ValueError(f"raw_prediction has shape {raw.shape}, expected {self.shape}")
            if not raw.is_c_contiguous():
                raise ValueError("raw_prediction on the device must be C-contiguous")
            return raw.reshape(self.n_rows)
        array = np.asarray(raw_prediction)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"raw_prediction must hold real numbers, got dtype {array.dtype}")
        if array.size != self.n_rows or (array.shape != self.shape and array.shape != (self.n_rows,)):
            raise ValueError(f"raw_prediction has shape {array.shape}, expected {self.shape}")
        if array.dtype != np.float32:
            array = array.astype(np.float64, copy=False)
        array = np.ascontiguousarray(array).reshape(self.n_rows)
        buffer = self._raw_buffers.get(array.dtype)
        if buffer is None:
            buffer = cuda.device_array(self.n_rows, array.dtype)
            self._raw_buffers[array.dtype] = buffer
        buffer.copy_to_device(array)
        return buffer

    def _check_finite(self, z):
        """A clear error for NaN or infinite scores, checked on the device: a NumPy pass over host
        scores took as long as copying them to the device."""
        self._nonfinite.copy_to_device(np.zeros(1, np.int32))
        blocks = max(1, min(math.ceil(self.n_rows / _SCALAR_BLOCK), 65535))
        self._kernels["count_nonfinite"][blocks, _SCALAR_BLOCK](z, self._nonfinite)
        if self._nonfinite.copy_to_host()[0]:
            raise_nonfinite(z.copy_to_host(), "raw_prediction")

    # ------------------------------------------------------------ rounds

    def gradient_hessian(self, raw_prediction):
        """(grad, hess) device arrays of ``shape`` for raw scores z (host or device, float32 or float64)."""
        z = self._raw(raw_prediction)
        self._check_finite(z)
        self._launch(z, self._grad_flat, self._hess_flat)
        # the engine reads the arrays on its own stream: the kernel must have finished
        cuda.synchronize()
        return self._grad, self._hess

    def loss(self, raw_prediction):
        """The host loss (``host.loss``) of raw scores given on the host or on the device."""
        if hasattr(raw_prediction, "__cuda_array_interface__"):
            raw_prediction = cuda.as_cuda_array(raw_prediction).copy_to_host()
        return self.host.loss(np.asarray(raw_prediction).reshape(self.shape))


class _ScalarDeviceLoss(DeviceLoss):
    family = "scalar"

    def _copy_data(self, bound):
        self._target = cuda.to_device(np.ascontiguousarray(bound.target_h, dtype=np.float64))

    def _launch(self, z, grad, hess):
        blocks = max(1, min(math.ceil(self.n_rows / _SCALAR_BLOCK), 65535))
        self._kernels["scalar_grad_hess"][blocks, _SCALAR_BLOCK](
            self._components, self._table, z, self._target, self._weight, self._weighted, self._hess_min, grad, hess)


class _SoftmaxDeviceLoss(DeviceLoss):
    family = "softmax"

    def _copy_data(self, bound):
        self._copy_groups(bound)
        self._q = cuda.to_device(np.ascontiguousarray(bound.q, dtype=np.float64).ravel())
        self._work = [cuda.device_array(self.n_rows, np.float64) for _ in range(3)]

    def _launch(self, z, grad, hess):
        args = (self._components, self._table, z, self._q, self._group_ptr, self._weight, self._weighted,
                self._exact, self._hess_min, *self._work, grad, hess)
        if self._max_group <= self.small_group:
            threads = min(self.block_size, max(32, _next_power_of_two(self._n_groups)))
            blocks = max(1, min(math.ceil(self._n_groups / threads), 65535))
            self._kernels["softmax_grad_hess_threads"][blocks, threads](*args)
        else:
            threads = min(self.block_size, _next_power_of_two(self._max_group))
            blocks = min(self._n_groups, 65535)
            self._kernels["softmax_grad_hess_blocks"][blocks, threads](*args)


class _PairwiseDeviceLoss(DeviceLoss):
    family = "pairwise"

    def _copy_data(self, bound):
        self._copy_groups(bound)
        self._k = int(bound.k)
        self._relevance = cuda.to_device(np.ascontiguousarray(bound.relevance, dtype=np.float64))
        self._work = [cuda.device_array(self.n_rows, np.float64) for _ in range(6)]
        self._order = [cuda.device_array(self.n_rows, np.int64) for _ in range(3)]

    def _launch(self, z, grad, hess):
        threads = min(self.block_size, max(32, _next_power_of_two(self._n_groups)))
        blocks = max(1, min(math.ceil(self._n_groups / threads), 65535))
        self._kernels["pairwise_grad_hess"][blocks, threads](
            self._components, self._table, z, self._relevance, self._group_ptr, self._weight, self._weighted,
            self._k, self._exact, self._hess_min, *self._work, *self._order, grad, hess)


def _add_kernel():
    kernel = _ADD.get("kernel")
    if kernel is None:
        def add(out, delta):
            for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
                out[i] += delta[i]

        kernel = _ADD["kernel"] = cuda.jit(add)
    return kernel


_ADD: dict = {}


def _device_view(array, like=None):
    """A Numba device array for a device array (Numba's, or anything exposing
    ``__cuda_array_interface__``), or a copy on the device of a host array of ``like``'s dtype."""
    if hasattr(array, "copy_to_host"):  # Numba's own, the simulator's included
        return array
    if hasattr(array, "__cuda_array_interface__"):
        return cuda.as_cuda_array(array)
    if like is None:
        raise TypeError(f"expected a device array, got {type(array).__name__}")
    return cuda.to_device(np.ascontiguousarray(array, dtype=like.dtype))


def add_into(out, delta):
    """``out += delta`` elementwise on the device (both of one shape; ``delta`` on the host or the
    device): the float32 sum XGBoost forms when it adds a round's trees to its training margins, for
    callers without CuPy (whose ``+=`` does the same)."""
    problem = _gpu_problem()
    if problem is not None:
        raise RuntimeError(f"selboost.cuda: {problem}")
    out, delta = _device_view(out), _device_view(delta, like=out)
    if delta.shape != out.shape or delta.dtype != out.dtype:
        raise ValueError(f"delta is {delta.dtype}{delta.shape}, out {out.dtype}{out.shape}")
    n = out.size
    blocks = max(1, min(math.ceil(n / _SCALAR_BLOCK), 65535))
    _add_kernel()[blocks, _SCALAR_BLOCK](out.reshape(n), delta.reshape(n))
    cuda.synchronize()


def to_device(bound_loss, dtype=np.float32, block_size=DEFAULT_BLOCK_SIZE, small_group=DEFAULT_SMALL_GROUP):
    """Copy a bound loss's constant data (targets, weights, group pointers, link) to the GPU once.

    ``bound_loss``: the result of ``SelectiveLoss(...).bind(...)``, ``ListwiseLoss(...).bind(...)``,
    ``PairwiseLoss(...).bind(...)`` or ``MulticlassLoss(...).bind(...)``.
    ``dtype``: of the returned gradients, float32 (what XGBoost reads) or float64.
    ``block_size``: threads per block of the per-group kernels, a power of two up to 1024.
    ``small_group``: listwise and multi-class groups of at most this many rows run one thread per
    group instead of one block per group.

    Returns a ``DeviceLoss``; its ``gradient_hessian(raw_prediction)`` returns device arrays.
    Raises ``RuntimeError`` (see ``require_gpu``) when no usable GPU is present.
    """
    return DeviceLoss(bound_loss, dtype=dtype, block_size=block_size, small_group=small_group)
