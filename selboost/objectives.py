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

import copy
import weakref

import numpy as np

from selboost._validation import as_float_array, raise_nonfinite
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss

__all__ = [
    "XGBoostObjective",
    "LightGBMObjective",
    "xgboost_objective",
    "lightgbm_objective",
    "set_init_score",
    "init_score",
    "DEFAULT_PARALLEL",
]

_LOSS_TYPES = (SelectiveLoss, ListwiseLoss, PairwiseLoss, MulticlassLoss)

#: The objectives run the serial kernels by default: the engines' OpenMP threads already occupy
#: every core during a round, and a parallel Numba kernel next to them was slower per boosting round
#: (see ``benchmarks/RESULTS.md``). ``parallel=True`` on the objective overrides it.
DEFAULT_PARALLEL = False


def check_loss(loss, name="loss"):
    """A selboost loss object or a TypeError naming ``name``."""
    if not isinstance(loss, _LOSS_TYPES):
        raise TypeError(
            f"{name} must be a selboost loss (SelectiveLoss, ListwiseLoss, PairwiseLoss or "
            f"MulticlassLoss), got {loss!r}"
        )
    return loss


def _with_parallel(loss, parallel):
    if parallel is None or loss.parallel == parallel:
        return loss
    if not isinstance(parallel, (bool, np.bool_)):
        raise TypeError(f"parallel must be True, False or None, got {parallel!r}")
    loss = copy.copy(loss)
    loss.parallel = bool(parallel)
    return loss


def _check_hess_scale(hess_scale):
    if isinstance(hess_scale, bool) or not isinstance(hess_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"hess_scale must be a positive number, got {hess_scale!r}")
    hess_scale = float(hess_scale)
    if not (np.isfinite(hess_scale) and hess_scale > 0):
        raise ValueError(f"hess_scale must be finite and > 0, got {hess_scale!r}")
    return hess_scale


# ---------------------------------------------------------------- reading the engines' data


def _engine_of(data):
    module = type(data).__module__
    if module.startswith("xgboost"):
        return "xgboost"
    if module.startswith("lightgbm"):
        return "lightgbm"
    raise TypeError(f"data must be an xgboost.DMatrix or a lightgbm.Dataset, got {type(data).__name__}")


def read_data(data):
    """(label, group sizes or None, sample_weight per row or None, group_weight per group or None)
    from an ``xgboost.DMatrix`` or a ``lightgbm.Dataset``."""
    if _engine_of(data) == "xgboost":
        label = data.get_label()
        pointer = data.get_uint_info("group_ptr")
        group = np.diff(pointer.astype(np.int64)) if pointer.size > 1 else None
        weight = data.get_weight()
        weight = weight if weight.size else None
        if group is not None and weight is not None:
            if weight.size != group.size:
                raise ValueError(
                    f"the DMatrix has {group.size} query groups but {weight.size} weights: with "
                    "groups XGBoost takes one weight per group"
                )
            return label, group, None, weight
        return label, group, weight, None
    label = data.get_label()
    if label is None:
        raise ValueError("the lightgbm.Dataset has no label")
    _check_lightgbm_label(data)
    constructed = data._handle is not None  # before construction get_group()/get_weight() raise
    group = data.get_group() if constructed else data.group
    weight = data.get_weight() if constructed else data.weight
    return np.asarray(label), _optional_array(group), _optional_array(weight), None


#: LightGBM stores labels as float32 through ``Common::AvoidInf``: NaN becomes 0 and +-inf (or any value
#: beyond float32's range) becomes exactly +-1e38f.
_LIGHTGBM_LABEL_CLAMP = np.float32(1e38)


def _check_lightgbm_label(dataset):
    """Refuse the NaN or infinite labels of a lightgbm.Dataset wherever they can still be seen, with the
    message every other path gives ("y_true must be finite: ...").

    Before construction ``dataset.label`` is the user's own array. Construction replaces it by LightGBM's
    copy, where a NaN is a 0 that cannot be told from a real one (the case no check can catch), while an
    infinite label is an exact +-1e38: refused here as the infinite label it was.
    """
    if dataset._handle is None:
        if dataset.label is not None:
            as_float_array(dataset.label, "y_true", ndim=(1, 2), allow_empty=True)
        return
    label = np.asarray(dataset.get_label())
    clamped = np.abs(label) >= _LIGHTGBM_LABEL_CLAMP
    if clamped.any():
        raise_nonfinite(np.where(clamped, np.inf, label), "y_true")


def _optional_array(values):
    """pandas objects and lists as arrays; None stays None."""
    return None if values is None else np.asarray(values)


def _n_rows(data):
    if _engine_of(data) == "xgboost":
        return data.num_row()
    if data._handle is not None:
        return data.num_data()
    return len(data.get_label())


def bind_loss(loss, label, group=None, sample_weight=None, group_weight=None, n_classes=None, n_rows=None):
    """Bind ``loss`` to labels, groups and weights (the engines' conventions already resolved)."""
    check_loss(loss)
    if isinstance(loss, SelectiveLoss):
        if group_weight is not None:
            # scalar loss on a DMatrix with groups: its per-group weights apply to every row of the group
            sample_weight = np.repeat(np.asarray(group_weight, dtype=np.float64), np.asarray(group))
        return loss.bind(label, sample_weight)
    if isinstance(loss, MulticlassLoss):
        label = np.asarray(label)
        if n_rows is not None and n_classes and label.ndim == 1 and label.size == n_rows * n_classes > n_rows:
            # an (n, k) label matrix (teacher probabilities) comes back from XGBoost flattened
            label = label.reshape(n_rows, n_classes)
        return loss.bind(label, n_classes, sample_weight)
    if group is None:
        raise ValueError(
            f"{type(loss).__name__} needs query groups: build the DMatrix with group= or qid=, "
            "or the lightgbm.Dataset with group="
        )
    return loss.bind(label, group, sample_weight, group_weight)


def init_score(loss, label, group=None, sample_weight=None, group_weight=None, n_classes=None):
    """The loss's optimal constant raw score: a float (scalar, listwise, pairwise) or a (k,) array.

    Scalar: ``h^{-1}(weighted mean of h(y))``; multi-class: per-class constants whose softmax gives
    the weighted class frequencies; listwise and pairwise: 0 (shifting a whole group changes nothing).
    """
    check_loss(loss)
    if isinstance(loss, SelectiveLoss):
        return bind_loss(loss, label, group, sample_weight, group_weight).init_score()
    if isinstance(loss, MulticlassLoss):
        return np.asarray(loss.init_score(label, n_classes, sample_weight), dtype=np.float64)
    return loss.init_score(label, group, sample_weight, group_weight)


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
    engine = _engine_of(data)
    if init is not None and engine == "lightgbm":
        _check_lightgbm_label(data)  # the last chance before construction hides a NaN label
    if init is None:
        label, group, sample_weight, group_weight = read_data(data)
        if isinstance(loss, MulticlassLoss) and n_classes is None and engine == "lightgbm":
            n_classes = data.params.get("num_class") if data.params else None
        init = init_score(loss, label, group, sample_weight, group_weight, n_classes)
    if np.ndim(init) > 1:
        raise ValueError(f"init must be a number or a (k,) vector, got shape {np.shape(init)}")
    # the engines would take a NaN or infinite margin silently (XGBoost keeps it, LightGBM makes it 0 or
    # +-1e38): the model would start from it
    shape = np.shape(init)
    init = as_float_array(init, "init", ndim=(0, 1)).reshape(shape)  # a scalar stays 0-d
    n_rows = _n_rows(data)
    margin = np.tile(init, (n_rows, 1)) if init.ndim == 1 else np.full(n_rows, float(init))
    if engine == "xgboost":
        data.set_base_margin(margin)
    else:
        _keep_unsplittable_features(data)
        data.set_init_score(margin)
    return float(init) if init.ndim == 0 else init


_NO_FEATURE_LEFT = (
    "the lightgbm.Dataset was constructed with no usable feature: LightGBM's feature pre-filter drops "
    "every feature that no split can satisfy under min_data_in_leaf (all of them on fewer than "
    "2 * min_data_in_leaf rows, default 20), and with a custom objective LightGBM then aborts in the "
    "first round. Build the Dataset with params={'feature_pre_filter': False}, or call set_init_score "
    "before the Dataset is constructed (it sets that)"
)


def _keep_unsplittable_features(dataset):
    """Set ``feature_pre_filter=False`` on a lightgbm.Dataset not yet constructed (unless the user chose a
    value); on a constructed one, raise if the pre-filter left no feature.

    With a custom objective ``Booster.update`` resets the booster's parameters (``objective="none"``) in
    the first round, and LightGBM's ``ResetConfig`` aborts on a Dataset without features ("Check failed:
    (train_data->num_features()) > (0)"), where the built-in objective, which never resets, grows constant
    trees. The features kept this way cannot be split under the parameters that would have dropped them,
    so the trees are the same; the estimators build their Datasets the same way.
    """
    if dataset._handle is None:
        if dataset.params is None:
            dataset.params = {}
        dataset.params.setdefault("feature_pre_filter", False)
    elif not any(dataset.feature_num_bin(i) for i in range(dataset.num_feature())):
        raise ValueError(_NO_FEATURE_LEFT)


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
    def __init__(self, loss, *, parallel=None, hess_scale=1.0, device="cpu"):
        check_loss(loss)
        if parallel is None:
            parallel = DEFAULT_PARALLEL
        self.loss = _with_parallel(loss, parallel)
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
            label, group, sample_weight, group_weight = read_data(data)
            n_rows = _n_rows(data)
            bound = bind_loss(self.loss, label, group, sample_weight, group_weight, n_classes, n_rows)
            binding = self._bindings[data] = _Binding(bound, self.device)
        return binding.bound

    def gradient_step(self, binding, raw_prediction):
        """One round's gradients and hessians: into the binding's float32 buffers on the CPU, or as
        device arrays from the CUDA kernels (``device="cuda"``; XGBoost takes them without a copy)."""
        if binding.device_loss is not None:
            grad, hess = binding.device_loss.gradient_hessian(raw_prediction)
            if self.hess_scale != 1.0:
                hess *= self.hess_scale  # CuPy arrays (selboost.cuda returns CuPy when it is installed)
            return grad, hess
        grad_out, hess_out = binding.grad, binding.hess
        binding.bound.gradient_hessian(raw_prediction, grad_out, hess_out)
        if self.hess_scale != 1.0:
            hess_out *= self.hess_scale
        return grad_out, hess_out

    def __call__(self, preds, data):
        try:
            binding = self._bindings.get(data)
        except TypeError:  # not weakly referenceable: not an engine's data object
            binding = None
        if binding is None:
            _engine_of(data)
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
    ``MulticlassLoss``. ``parallel`` overrides the loss's kernel choice (default: serial, see
    ``DEFAULT_PARALLEL``).
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


def xgboost_objective(loss, *, parallel=None, hess_scale=1.0, device="cpu"):
    """A selboost loss as an ``obj=`` callable for ``xgboost.train`` (see ``XGBoostObjective``).

    ``device="cuda"`` (with XGBoost's ``device="cuda"``): labels, weights and groups are copied to the
    GPU once and every round returns device arrays from ``selboost.cuda``'s kernels, so the only
    per-round transfer left is XGBoost's own copy of the predictions. Needs the ``gpu`` extra."""
    return XGBoostObjective(loss, parallel=parallel, hess_scale=hess_scale, device=device)


def lightgbm_objective(loss, *, parallel=None, hess_scale=1.0):
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
    return LightGBMObjective(loss, parallel=parallel, hess_scale=hess_scale)
