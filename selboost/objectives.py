"""Engine adapters: a selboost loss as a custom objective for XGBoost and LightGBM.

``xgboost_objective(loss)`` is a callable for ``xgboost.train(..., obj=...)`` and
``lightgbm_objective(loss)`` one for ``lightgbm.train({"objective": ...}, ...)``. Each works for every
loss kind:

- ``SelectiveLoss``: one score per row; weights per row (XGBoost without groups, LightGBM).
- ``ListwiseLoss`` / ``PairwiseLoss``: query groups read from the training data (XGBoost
  ``get_uint_info("group_ptr")``, LightGBM ``get_group()``). XGBoost's weights are per group when the
  DMatrix has groups and are passed as ``group_weight``; LightGBM's weights are per row and are passed
  as ``sample_weight``.
- ``MulticlassLoss``: (n, k) raw predictions (XGBoost ``num_class=k``, LightGBM ``num_class=k``).

The loss is bound once per training data object (labels, groups and weights validated once) and the
float32 gradient/hessian buffers are allocated once; every boosting round is then one kernel call.
Neither engine applies weights to custom gradients: the bound loss does.

Initial score: boosters fit no intercept for custom objectives (XGBoost starts at ``base_score``,
0.5 by default; LightGBM at 0). ``set_init_score(data, loss)`` sets the loss's optimal constant as
``base_margin`` / ``init_score`` so that a selboost objective starts where a built-in one would; see
its docstring for prediction.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from selboost._validation import as_float_array, check_n_threads
from selboost.engines import constant_margin, get_engine
from selboost.losses import MulticlassLoss, check_loss

__all__ = [
    "XGBoostObjective",
    "LightGBMObjective",
    "LightGBMSklearnObjective",
    "xgboost_objective",
    "lightgbm_objective",
    "set_init_score",
    "init_score",
]

def _check_hess_scale(hess_scale):
    if isinstance(hess_scale, bool) or not isinstance(hess_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"hess_scale must be a positive number, got {hess_scale!r}")
    hess_scale = float(hess_scale)
    if not (np.isfinite(hess_scale) and hess_scale > 0):
        raise ValueError(f"hess_scale must be finite and > 0, got {hess_scale!r}")
    return hess_scale


# ---------------------------------------------------------------- reading the engines' data


def read_data(data):
    """(label, group sizes or None, sample_weight per row or None, group_weight per group or None)
    from an engine's data object (``xgboost.DMatrix``, ``lightgbm.Dataset``)."""
    return get_engine(data).read_data(data)


def bind_loss(loss, label, group=None, sample_weight=None, group_weight=None, n_classes=None, n_rows=None):
    """Bind ``loss`` to labels, groups and weights (the engines' conventions already resolved)."""
    return check_loss(loss).bind_data(label, group, sample_weight, group_weight, n_classes, n_rows)


def init_score(loss, label, group=None, sample_weight=None, group_weight=None, n_classes=None):
    """The loss's optimal constant raw score: a float (scalar, listwise, pairwise) or a (k,) array.

    Scalar: ``h^{-1}(weighted mean of h(y))``; multi-class: per-class constants whose softmax gives
    the weighted class frequencies; listwise and pairwise: 0 (shifting a whole group changes nothing).
    """
    init = bind_loss(loss, label, group, sample_weight, group_weight, n_classes).init_score()
    return np.asarray(init, dtype=np.float64) if isinstance(loss, MulticlassLoss) else init


def set_init_score(data, loss, init=None, n_classes=None):
    """Start boosting from the loss's optimal constant; returns that constant.

    ``data`` is an ``xgboost.DMatrix`` (sets ``base_margin``) or a ``lightgbm.Dataset`` (sets
    ``init_score``), filled with ``init`` for every row ((n, k) for multi-class). With ``init=None``
    the constant is computed from the data's labels, groups and weights: ``h^{-1}(weighted mean of
    h(y))`` for a ``SelectiveLoss``, per-class log-frequencies for ``MulticlassLoss`` (pass
    ``n_classes`` when a class may be missing), 0 for listwise and pairwise losses.

    Call it on the training data, and with the returned ``init`` on every validation set so that the
    metrics see the same scores. At prediction time neither engine knows the constant:

    - XGBoost: predict on a DMatrix carrying the same base margin (``set_init_score(dtest, loss,
      init=init)``). Alternatively skip the base margin and train with ``params["base_score"] = init``
      (a list for multi-class): with a custom objective XGBoost uses it as the starting margin as it
      is, keeps it in the saved model, and ``predict`` needs nothing added. Do not combine the two:
      a DMatrix's base margin replaces ``base_score``.
    - LightGBM: ``booster.predict(X, raw_score=True) + init``.

    On a ``lightgbm.Dataset`` not yet constructed it also sets ``feature_pre_filter=False`` in the
    Dataset's params (unless they set it): on a small Dataset LightGBM's pre-filter drops every feature,
    and with a custom objective LightGBM then aborts (see ``lightgbm_objective``). A constructed Dataset
    left without features raises a ValueError that says so. NaN or infinite labels raise a ValueError
    (``y_true``) with ``init`` given too: once LightGBM has constructed the Dataset a NaN label is a 0.
    """
    engine = get_engine(data)
    if init is not None:
        engine.check_labels(data)  # LightGBM: the last chance before construction hides a NaN label
    if init is None:
        label, group, sample_weight, group_weight = engine.read_data(data)
        if n_classes is None:
            n_classes = engine.n_classes_of(data)
        init = init_score(loss, label, group, sample_weight, group_weight, n_classes)
    if np.ndim(init) > 1:
        raise ValueError(f"init must be a number or a (k,) vector, got shape {np.shape(init)}")
    # the engines would take a NaN or infinite margin silently (XGBoost keeps it, LightGBM makes it 0 or
    # +-1e38): the model would start from it
    shape = np.shape(init)
    init = as_float_array(init, "init", ndim=(0, 1)).reshape(shape)  # a scalar stays 0-d
    engine.set_margin(data, constant_margin(init, engine.n_rows(data)))
    return float(init) if init.ndim == 0 else init


# ---------------------------------------------------------------- the objectives


class _Binding:
    """A bound loss with its preallocated float32 output buffers (or its copy on the GPU)."""

    __slots__ = ("bound", "grad", "hess", "device_loss")

    def __init__(self, bound, device):
        self.bound = bound
        if device == "cuda":
            from selboost import cuda  # only here: CPU paths never import numba.cuda

            self.device_loss = cuda.to_device(bound)
            self.grad = self.hess = None
        else:
            self.device_loss = None
            self.grad = np.empty(bound.shape, dtype=np.float32)
            self.hess = np.empty(bound.shape, dtype=np.float32)


_DEVICES = ("cpu", "cuda")


class _Objective:
    def __init__(self, loss, *, n_threads=1, hess_scale=1.0, device="cpu"):
        self.loss = check_loss(loss)
        self.n_threads = check_n_threads(n_threads)
        self.hess_scale = _check_hess_scale(hess_scale)
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
        self._bindings[data] = _Binding(bound, self.device)
        return bound

    def bind(self, data, n_classes=None):
        """Bind the loss to ``data`` once (validated here); later calls return the cached binding."""
        binding = self._bindings.get(data)
        if binding is None:
            engine = get_engine(data)
            label, group, sample_weight, group_weight = engine.read_data(data)
            bound = self.loss.bind_data(label, group, sample_weight, group_weight, n_classes, engine.n_rows(data))
            binding = self._bindings[data] = _Binding(bound, self.device)
        return binding.bound

    def binding(self, data):
        """The binding registered or bound for ``data`` (its bound loss and gradient buffers), for a
        caller that computes the rounds itself (``selboost.train``)."""
        return self._bindings[data]

    def gradient_step(self, binding, raw_prediction):
        """One round's gradients and hessians: into the binding's float32 buffers on the CPU, or as
        device arrays from the CUDA kernels (``device="cuda"``; XGBoost takes them without a copy)."""
        if binding.device_loss is not None:
            grad, hess = binding.device_loss.gradient_hessian(raw_prediction)
            if self.hess_scale != 1.0:
                hess *= self.hess_scale  # CuPy arrays (selboost.cuda returns CuPy when it is installed)
            return grad, hess
        grad_out, hess_out = binding.grad, binding.hess
        binding.bound.gradient_hessian(raw_prediction, grad_out, hess_out, n_threads=self.n_threads)
        if self.hess_scale != 1.0:
            hess_out *= self.hess_scale
        return grad_out, hess_out

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


class XGBoostObjective(_Objective):
    """``obj=`` for ``xgboost.train``: ``f(preds, dtrain) -> (grad, hess)``, float32 arrays.

    ``preds`` are XGBoost's raw margins ((n, k) with ``num_class=k``). Groups come from the DMatrix's
    ``group_ptr``; with groups XGBoost's weights are per group (passed as ``group_weight``), without
    them per row. ``hess_scale`` multiplies every hessian: ``hess_scale=2`` reproduces
    ``multi:softprob``, whose hessian is ``2 p (1 - p)``, with an identity-transform
    ``MulticlassLoss``. ``n_threads``: the threads the gradient kernels run on, 1 by default because
    the engine's own threads already occupy every core during a round (``benchmarks/RESULTS.md``).
    """


class LightGBMObjective(_Objective):
    """``params["objective"]`` for ``lightgbm.train``: ``f(preds, train_set) -> (grad, hess)``.

    ``preds`` are raw scores, float64 ((n, k) for ``num_class=k``). Groups come from
    ``train_set.get_group()`` and weights are per row. ``hess_scale=k / (k - 1)`` reproduces
    LightGBM's ``multiclass`` objective, whose hessian is ``k / (k - 1) p (1 - p)``.
    With ``device_type="cuda"`` LightGBM copies these host gradients to the device every round
    (LightGBM has no interface for device-resident custom gradients), so this objective always runs on
    the CPU.
    """


class LightGBMSklearnObjective:
    """``objective=`` for LightGBM's scikit-learn and Dask estimators:
    ``f(y_true, y_pred, weight, group) -> (grad, hess)``, float32 arrays.

    LightGBM's wrapper passes the constructed Dataset's label, the raw scores (``(n, k)`` with
    ``num_class=k``), the per-row weights (``None`` without) and the group sizes (``None`` without).
    The loss is bound on the first call for a label array (validated once) and reused while LightGBM
    passes the same array, which it does every round; in ``lightgbm.dask`` that is once per worker.
    ``MulticlassLoss`` takes the class count from ``y_pred``'s columns; the listwise and pairwise
    losses need ``group``. ``n_threads`` and ``hess_scale`` as for ``selboost.lightgbm_objective``.
    """

    def __init__(self, loss, *, n_threads=1, hess_scale=1.0):
        # validates the options exactly as the single-machine adapter does
        self._adapter = LightGBMObjective(loss, n_threads=n_threads, hess_scale=hess_scale)
        self.loss = loss
        self.n_threads = n_threads
        self.hess_scale = hess_scale
        self._bindings = {}
        self._lock = threading.Lock()

    def __repr__(self):
        return f"LightGBMSklearnObjective({self.loss!r}, hess_scale={self.hess_scale!r})"

    def __getstate__(self):
        return {"loss": self.loss, "n_threads": self.n_threads, "hess_scale": self.hess_scale}

    def __setstate__(self, state):
        self.__init__(state["loss"], n_threads=state.get("n_threads", 1), hess_scale=state["hess_scale"])

    def _forget(self, key):
        self._bindings.pop(key, None)

    def _binding(self, y_true, y_pred, weight, group):
        key = id(y_true)
        entry = self._bindings.get(key)
        if entry is not None and entry[0]() is y_true:
            return entry[1]
        n_classes = y_pred.shape[1] if np.ndim(y_pred) == 2 else None
        bound = self._adapter.loss.bind_data(y_true, group, weight, None, n_classes, len(y_true))
        binding = (bound, np.empty(bound.shape, np.float32), np.empty(bound.shape, np.float32))
        # a weak reference: the cache must not keep a finished training set's labels alive
        ref = weakref.ref(y_true, lambda _, key=key: self._forget(key))
        with self._lock:
            self._bindings[key] = (ref, binding)
        return binding

    def __call__(self, y_true, y_pred, weight, group):
        bound, grad, hess = self._binding(y_true, y_pred, weight, group)
        if np.shape(y_pred) != bound.shape:
            raise ValueError(
                f"LightGBM passed raw scores of shape {np.shape(y_pred)}, the loss is bound to {bound.shape}: "
                "for MulticlassLoss set num_class, for the other losses do not"
            )
        bound.gradient_hessian(y_pred, grad, hess, n_threads=self._adapter.n_threads)
        if self._adapter.hess_scale != 1.0:
            hess *= self._adapter.hess_scale
        return grad, hess


def xgboost_objective(loss, *, n_threads=1, hess_scale=1.0, device="cpu"):
    """A selboost loss as an ``obj=`` callable for ``xgboost.train`` (see ``XGBoostObjective``).

    ``device="cuda"`` (with XGBoost's ``device="cuda"``): labels, weights and groups are copied to the
    GPU once and every round returns device arrays from ``selboost.cuda``'s kernels, so the only
    per-round transfer left is XGBoost's own copy of the predictions. Needs the ``gpu`` extra."""
    return XGBoostObjective(loss, n_threads=n_threads, hess_scale=hess_scale, device=device)


def lightgbm_objective(loss, *, n_threads=1, hess_scale=1.0):
    """A selboost loss as a ``params["objective"]`` callable for ``lightgbm.train``
    (see ``LightGBMObjective``).

    Small Datasets: with the default ``min_data_in_leaf=20`` and ``feature_pre_filter=True`` LightGBM
    drops every feature of a Dataset of fewer than 40 rows as unsplittable. Its built-in objectives then
    grow constant trees, but a custom one aborts in the first round ("Check failed:
    (train_data->num_features()) > (0)"), because ``Booster.update`` resets the parameters to set
    ``objective="none"`` and LightGBM refuses to reset them on a Dataset without features.
    ``set_init_score(dataset, loss)`` before training sets ``feature_pre_filter=False`` on the Dataset;
    without it, pass ``params={"feature_pre_filter": False}`` to ``lightgbm.Dataset`` (or put it in the
    training params). The trees do not change: the features kept can never be split anyway.

    Labels: LightGBM stores a Dataset's labels at construction, turning a NaN into 0 and +-inf into
    +-1e38, and ``lightgbm.train`` constructs the Dataset before the objective first sees it. A NaN or
    infinite label raises "y_true must be finite" from ``set_init_score`` on a Dataset not yet
    constructed, and an infinite one (stored as +-1e38) from the objective's first round as well. One
    case cannot be caught: a NaN label in a Dataset that was constructed before selboost saw it (no
    ``set_init_score`` before ``lightgbm.train``, or a Dataset constructed by hand), because LightGBM
    then holds a 0 and the user's array is gone. Call ``set_init_score`` first, or check the labels.
    """
    return LightGBMObjective(loss, n_threads=n_threads, hess_scale=hess_scale)
