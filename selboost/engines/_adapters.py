"""What the engines' objective and metric adapters share: a loss bound once per data object, its
gradient buffers, and a metric prepared once per evaluation set. Each engine module
(``selboost.engines.xgboost``, ``selboost.engines.lightgbm``) subclasses these with its engine's calling
convention; nothing here imports an engine.
"""

from __future__ import annotations

import weakref

import numpy as np

from selboost._validation import check_gradients_storable, check_n_threads
from selboost.engines import get_engine
from selboost.losses import check_loss
from selboost.metrics import as_metric

__all__ = ["Binding", "EngineObjective", "EngineMetric", "check_hess_scale"]


def check_hess_scale(hess_scale):
    if isinstance(hess_scale, bool) or not isinstance(hess_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"hess_scale must be a positive number, got {hess_scale!r}")
    hess_scale = float(hess_scale)
    if not (np.isfinite(hess_scale) and hess_scale > 0):
        raise ValueError(f"hess_scale must be finite and > 0, got {hess_scale!r}")
    return hess_scale


class Binding:
    """A bound loss with its preallocated float32 output buffers (or its copy on the GPU); ``checked``
    once its first gradients were found storable in float32."""

    __slots__ = ("bound", "grad", "hess", "device_loss", "checked")

    def __init__(self, bound, device):
        self.bound = bound
        self.checked = False
        if device == "cuda":
            from selboost import cuda  # only here: CPU paths never import numba.cuda

            self.device_loss = cuda.to_device(bound)
            self.grad = self.hess = None
        else:
            self.device_loss = None
            self.grad = np.empty(bound.shape, dtype=np.float32)
            self.hess = np.empty(bound.shape, dtype=np.float32)


_DEVICES = ("cpu", "cuda")


def _host(array):
    """A device array's copy in host memory (CuPy's ``get``, Numba's ``copy_to_host``); a host array as it is."""
    for name in ("get", "copy_to_host"):
        if hasattr(array, name):
            return getattr(array, name)()
    return np.asarray(array)


class EngineObjective:
    """A selboost loss as an engine's custom objective (each engine module subclasses it with the
    engine's calling convention). The loss is bound once per training data object (labels, groups and
    weights validated once) and the float32 gradient buffers are allocated once; every round is then
    one kernel call. The bindings live here, never in the user's loss."""

    #: the largest sum of absolute gradients the engine's split search handles (see
    #: ``check_gradients_storable``); an engine module lowers it where its arithmetic needs that
    gradient_sum_limit = float("inf")
    #: the engine's name in messages
    engine_label = "the engine"

    def __init__(self, loss, *, n_threads=1, hess_scale=1.0, device="cpu"):
        self.loss = check_loss(loss)
        self.n_threads = check_n_threads(n_threads)
        self.hess_scale = check_hess_scale(hess_scale)
        if device not in _DEVICES:
            raise ValueError(f"device must be one of {list(_DEVICES)}, got {device!r}")
        if device == "cuda":
            from selboost import cuda

            cuda.require_gpu()
        self.device = device
        self._bindings = weakref.WeakKeyDictionary()

    def __repr__(self):
        return f"{type(self).__name__}({self.loss!r}, hess_scale={self.hess_scale!r}, device={self.device!r})"

    def __getstate__(self):
        # the bindings belong to this process's data objects: a copy (a Dask worker's) binds its own
        state = self.__dict__.copy()
        del state["_bindings"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bindings = weakref.WeakKeyDictionary()

    def __deepcopy__(self, memo):
        # lightgbm.train deep-copies its params, this objective among them: the copy must keep the
        # bindings registered for the training data (e.g. teacher probabilities), so it shares them
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def register(self, data, bound):
        """Use an already bound loss for ``data`` (for labels or weights the data object cannot hold,
        e.g. per-row weights on an XGBoost DMatrix with groups, or teacher probability rows)."""
        self._bindings[data] = Binding(bound, self.device)
        return bound

    def bind(self, data, n_classes=None):
        """Bind the loss to ``data`` once (validated here); later calls return the cached binding."""
        binding = self._bindings.get(data)
        if binding is None:
            engine = get_engine(data)
            label, group, sample_weight, group_weight = engine.read_data(data)
            bound = self.loss.bind_data(label, group, sample_weight, group_weight, n_classes, engine.n_rows(data))
            binding = self._bindings[data] = Binding(bound, self.device)
        return binding.bound

    def binding(self, data):
        """The binding registered or bound for ``data`` (its bound loss and gradient buffers), for a
        caller that computes the rounds itself (``selboost.xgboost_train``)."""
        return self._bindings[data]

    def gradient_step(self, binding, raw_prediction):
        """One round's gradients and hessians: into the binding's float32 buffers on the CPU, or as
        device arrays from the CUDA kernels (``device="cuda"``; XGBoost takes them without a copy).
        The first round's are checked to fit in float32 (``check_gradients_storable``): a loss scaled
        beyond it would otherwise train constant trees. Later rounds move the scores towards the
        targets, so they are not checked again (a pass over the gradients every round)."""
        if binding.device_loss is not None:
            grad, hess = binding.device_loss.gradient_hessian(raw_prediction)
            if self.hess_scale != 1.0:
                hess *= self.hess_scale  # CuPy arrays (selboost.cuda returns CuPy when it is installed)
        else:
            grad, hess = binding.grad, binding.hess
            binding.bound.gradient_hessian(raw_prediction, grad, hess, n_threads=self.n_threads)
            if self.hess_scale != 1.0:
                hess *= self.hess_scale
        if not binding.checked:
            check_gradients_storable(_host(grad), _host(hess), self.loss, self.gradient_sum_limit,
                                     self.engine_label)
            binding.checked = True
        return grad, hess

    def __call__(self, preds, data):
        try:
            binding = self._bindings.get(data)
        except TypeError:  # not weakly referenceable: not an engine's data object
            binding = None
        if binding is None:
            get_engine(data)  # a TypeError for anything but an engine's data object
            n_classes = preds.shape[1] if np.ndim(preds) == 2 else None
            self.bind(data, n_classes)
            binding = self._bindings[data]
        if np.shape(preds) != binding.bound.shape:
            raise ValueError(
                f"the engine passed predictions of shape {np.shape(preds)}, the loss is bound to "
                f"{binding.bound.shape}: for MulticlassLoss set num_class, for the other losses do not"
            )
        return self.gradient_step(binding, np.asarray(preds))


class EngineMetric:
    """A metric as an engine's custom-metric callable (each engine module formats the result). Labels,
    groups and weights are read from each evaluation data object and validated once; ``register``
    hands over an already prepared metric (labels the data object cannot hold). The cache lives here,
    never in the user's metric object."""

    def __init__(self, metric):
        self.metric = as_metric(metric)
        self._prepared = weakref.WeakKeyDictionary()

    def register(self, data, prepared):
        self._prepared[data] = prepared

    def value(self, preds, data):
        prepared = self._prepared.get(data)
        if prepared is None:
            label, group, sample_weight, group_weight = get_engine(data).read_data(data)
            n_classes = preds.shape[1] if np.ndim(preds) == 2 else None
            prepared = self._prepared[data] = self.metric.prepare(label, group, sample_weight, group_weight,
                                                                  n_classes)
        return prepared.evaluate(preds)
