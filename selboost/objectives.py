"""A selboost loss as a custom objective for XGBoost and LightGBM, and its initial score.

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
Neither engine applies weights to custom gradients: the bound loss does. The adapters themselves are
the engines' (``selboost.engines.xgboost.XGBoostObjective``, ``selboost.engines.lightgbm.LightGBMObjective``
and ``LightGBMSklearnObjective``); these functions ask the engine for them.

Initial score: boosters fit no intercept for custom objectives (XGBoost starts at ``base_score``,
0.5 by default; LightGBM at 0). ``set_init_score(data, loss)`` sets the loss's optimal constant as
``base_margin`` / ``init_score`` so that a selboost objective starts where a built-in one would; see
its docstring for prediction.
"""

from __future__ import annotations

import numpy as np

from selboost._validation import as_float_array
from selboost.engines import constant_margin, get_engine
from selboost.losses import MulticlassLoss, check_loss

__all__ = [
    "xgboost_objective",
    "lightgbm_objective",
    "set_init_score",
    "init_score",
]

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


def xgboost_objective(loss, *, n_threads=1, hess_scale=1.0, device="cpu"):
    """A selboost loss as an ``obj=`` callable for ``xgboost.train``
    (``selboost.engines.xgboost.XGBoostObjective``).

    ``device="cuda"`` (with XGBoost's ``device="cuda"``): labels, weights and groups are copied to the
    GPU once and every round returns device arrays from ``selboost.cuda``'s kernels, so the only
    per-round transfer left is XGBoost's own copy of the predictions. Needs the ``gpu`` extra."""
    return get_engine("xgboost").objective(loss, n_threads=n_threads, hess_scale=hess_scale, device=device)


def lightgbm_objective(loss, *, n_threads=1, hess_scale=1.0):
    """A selboost loss as a ``params["objective"]`` callable for ``lightgbm.train``
    (``selboost.engines.lightgbm.LightGBMObjective``).

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
    Weights go the same way: a NaN or infinite weight, or a number of weights other than the rows',
    raises from ``set_init_score``; an infinite one (stored as +-1e38) from the first round as well;
    a NaN in a Dataset already constructed is a 0 to LightGBM and cannot be told.
    """
    return get_engine("lightgbm").objective(loss, n_threads=n_threads, hess_scale=hess_scale)
