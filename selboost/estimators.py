"""Scikit-learn estimators boosting a selective loss with XGBoost or LightGBM.

``SelectiveRegressor``, ``SelectiveClassifier`` and ``SelectiveRanker`` drive ``xgboost.train`` /
``lightgbm.train`` with a selboost objective (``selboost.objectives``), start from the loss's optimal
constant (XGBoost keeps it as ``base_score`` in the model; for LightGBM it is added back at prediction)
and evaluate ``eval_set`` with a selboost metric (``selboost.metrics``) for early stopping.

Common parameters:

- ``loss``: a selboost loss object (defaults: ``SelectiveLoss(Identity())`` -> square loss;
  ``ListwiseLoss()``; binary ``SelectiveLoss(0.25 * Sigmoid(), target="link")`` -> logistic loss,
  multi-class ``MulticlassLoss()`` -> softmax cross-entropy);
- ``engine``: ``"xgboost"`` or ``"lightgbm"``; ``device``: ``"cpu"``, ``"cuda"`` (XGBoost
  ``device="cuda"``, with the gradients computed on the GPU by ``selboost.cuda``; LightGBM
  ``device_type="cuda"``, which needs a CUDA build of LightGBM) or ``"gpu"`` (LightGBM's OpenCL
  ``device_type="gpu"`` of the PyPI wheel). LightGBM takes custom gradients only from the host: it
  copies them to the device every round (gradient and hessian, 8 bytes per row and output; its
  cost has not been measured on a GPU yet).
  Without a usable device ``fit`` raises a ValueError;
- ``n_estimators``, ``learning_rate``, ``max_depth``, ``num_leaves``, ``min_child_weight``,
  ``subsample``, ``colsample_bytree``, ``reg_lambda``, ``random_state``, ``n_jobs``: mapped to each
  engine's names by the engine object (``selboost.engines``; ``None`` keeps the engine's default;
  ``n_jobs=-1`` is every core, ``-2`` all but one, as in joblib);
- ``early_stopping_rounds``: stop when the metric on the *last* ``eval_set`` entry has not improved
  for this many rounds; ``eval_metric``: ``"loss"`` (the mean selective loss), ``"ndcg@k"`` or a
  selboost metric object (``NDCG``, ``RegionError``, ``LossMetric``);
- ``engine_params``: any further engine parameter, passed through (and winning over the above).

Fitted: ``booster_`` (also ``get_booster()``), ``init_score_``, ``best_iteration_`` (0-based, with early
stopping), ``best_score_`` (the metric on the last ``eval_set`` entry at that round, or at the last
round), ``evals_result_`` (``{"validation_0": {metric name: [values per round]}}``, as the engines key
it), ``feature_importances_`` (total gain per feature, normalised to sum 1). ``fit`` takes
``callbacks=`` (the engine's own callback objects) and ``verbose=`` (print the metric every round, or
every ``verbose`` rounds); ``predict`` takes ``output_margin=`` / ``raw_score=`` (raw scores) and
``iteration_range=(begin, end)``.

Ranking under scikit-learn's model selection: give ``X`` as a pandas DataFrame with a ``qid`` column
(XGBoost's ``XGBRanker`` convention; the column is read as the query ids in ``fit``, ``predict`` and
``score``, and is no feature), or enable metadata routing and request ``qid``
(``ranker.set_fit_request(qid=True).set_score_request(qid=True)``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from selboost import _model_state
from selboost._validation import check_feature_columns, check_query_ids, check_storable
from selboost.engines import ENGINE_NAMES, BoostingParams, get_engine, seed, threads
from selboost.links import Identity, Sigmoid
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, _Loss
from selboost.metrics import NDCG, LossMetric, RegionDetection, RegionError, _Metric, as_metric, ndcg

__all__ = ["SelectiveRegressor", "SelectiveClassifier", "SelectiveRanker", "check_gpu"]

_DEVICES = ("cpu", "cuda", "gpu")
_MODEL_FORMAT = "selboost-model"
#: 3: sealed with a digest of the whole file (``_model_state.seal``)
_MODEL_VERSION = 3


def check_gpu(engine, device="cuda"):
    """None when ``engine`` can train on ``device`` ("cuda", or LightGBM's OpenCL "gpu") here, else
    the reason (a tiny trial, cached)."""
    return get_engine(engine).gpu_problem(device)


# ---------------------------------------------------------------- parameter checks


class _Interval(Interval):
    """scikit-learn's ``Interval`` that refuses ``bool``: True is an int to Python, but a flag given
    where a count or a rate belongs is a mistake (the engines would read it as 1)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


#: The parameters of every estimator, checked by scikit-learn's ``_validate_params`` at fit; each class
#: adds ``loss`` (its loss kinds). None keeps the engine's default where it is allowed.
_COMMON_CONSTRAINTS = {
    "engine": [StrOptions(set(ENGINE_NAMES))],
    "device": [StrOptions(set(_DEVICES))],
    "n_estimators": [_Interval(Integral, 1, None, closed="left")],
    "learning_rate": [_Interval(Real, 0.0, None, closed="neither")],
    "max_depth": [_Interval(Integral, 1, None, closed="left"), None],
    "num_leaves": [_Interval(Integral, 2, None, closed="left"), None],
    "min_child_weight": [_Interval(Real, 0.0, None, closed="left"), None],
    "subsample": [_Interval(Real, 0.0, 1.0, closed="right")],
    "colsample_bytree": [_Interval(Real, 0.0, 1.0, closed="right")],
    "reg_lambda": [_Interval(Real, 0.0, None, closed="left"), None],
    "early_stopping_rounds": [_Interval(Integral, 1, None, closed="left"), None],
    # a string's grammar ("loss", "ndcg", "ndcg@k", "ndcg@k-", any case) is more than a set of options:
    # ``_eval_metric`` reads it. The public metrics are named in the error; any metric is taken, and a
    # loss is watched as its LossMetric
    "eval_metric": [None, str, NDCG, RegionError, RegionDetection, LossMetric, Hidden(_Metric), Hidden(_Loss)],
    # no upper bound, unlike scikit-learn's "random_state": ``engines.seed`` folds any int into the
    # engines' range
    "random_state": [_Interval(Integral, 0, None, closed="left"), np.random.RandomState, None],
    # -1 every core, -2 all but one (joblib's reading); 0 means nothing
    "n_jobs": [_Interval(Integral, 1, None, closed="left"), _Interval(Integral, None, -1, closed="right"), None],
    "engine_params": [dict, None],
}


def check_engine_params(engine_params):
    """``engine_params`` (None or a dict: its constraint) must leave the objective to the loss: a rule
    on the dict's keys, which a constraint cannot state."""
    for key in ("objective", "obj", "fobj"):
        if key in (engine_params or {}):
            raise ValueError(f"engine_params must not set {key!r}: the objective is the loss (loss=)")


def _groups_from_qid(qid, n_rows, name="qid"):
    qid = check_query_ids(qid, name)
    if qid.ndim != 1 or qid.shape[0] != n_rows:
        raise ValueError(f"{name} must hold one query id per row ({n_rows}), got shape {qid.shape}")
    if n_rows > 1 and (np.diff(qid) < 0).any():
        first = int(np.flatnonzero(np.diff(qid) < 0)[0])
        raise ValueError(
            f"{name} must be sorted (rows of one query together, queries in increasing id order): "
            f"row {first + 1} has id {qid[first + 1]!r} after {qid[first]!r}; sort X, y and {name} by {name}"
        )
    starts = np.flatnonzero(np.r_[True, qid[1:] != qid[:-1]])
    return np.diff(np.r_[starts, n_rows])


def _resolve_groups(group, qid, n_rows, group_name="group", qid_name="qid"):
    if group is not None and qid is not None:
        raise ValueError(f"give either {group_name} (group sizes) or {qid_name} (per-row query ids), not both")
    if group is None and qid is None:
        raise ValueError(
            f"the ranker needs query groups: pass {group_name}= (sizes of consecutive groups) "
            f"or {qid_name}= (sorted per-row query ids), or give X as a DataFrame with a 'qid' column"
        )
    if qid is not None:
        return _groups_from_qid(qid, n_rows, qid_name)
    sizes = np.asarray(group)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu" or (sizes <= 0).any():
        raise ValueError(f"{group_name} must be a non-empty 1-d array of positive integer group sizes")
    if int(sizes.sum()) != n_rows:
        raise ValueError(f"{group_name} sizes sum to {int(sizes.sum())}, but X has {n_rows} rows")
    return sizes.astype(np.int64)


def _qid_column(X, qid, name="qid"):
    """XGBoost's convention: a pandas DataFrame's ``qid`` column holds the query ids (and is no feature)."""
    if type(X).__module__.startswith("pandas") and hasattr(X, "columns") and "qid" in X.columns:
        if qid is not None:
            raise ValueError(f"X has a 'qid' column and {name}= is given too: give the query ids once")
        return X.drop(columns="qid"), np.asarray(X["qid"])
    return X, qid


def eval_entries(eval_set, **per_set):
    """``eval_set`` as a new list of (X, y) pairs (a single pair is taken as a list of one), and each
    per-set argument (``eval_sample_weight=``, ``eval_group=``, ...) as a new list with one entry per
    pair (None entries when it is not given). The caller's lists and tuples are read, never changed.
    The estimators on one machine and on Dask read their eval sets through this one function."""
    if eval_set is None:
        given = [name for name, value in per_set.items() if value is not None]
        if given:
            raise ValueError(f"{' / '.join(given)} given without eval_set")
        return [], {name: [] for name in per_set}
    if isinstance(eval_set, tuple) and len(eval_set) == 2 and not isinstance(eval_set[0], tuple):
        eval_set = [eval_set]
    if not isinstance(eval_set, (list, tuple)):
        raise TypeError(f"eval_set must be a list of (X, y) pairs, got {type(eval_set).__name__}")
    pairs = []
    for i, pair in enumerate(eval_set):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"eval_set[{i}] must be an (X, y) pair")
        pairs.append((pair[0], pair[1]))
    lists = {}
    for name, value in per_set.items():
        value = [None] * len(pairs) if value is None else list(value)
        if len(value) != len(pairs):
            raise ValueError(f"{name} has {len(value)} entries, eval_set has {len(pairs)}")
        lists[name] = value
    return pairs, lists


# ---------------------------------------------------------------- the shared base


class _SelectiveBoosting(BaseEstimator):
    """One source of parameters, validation, training and prediction for every estimator (the Dask
    estimators included); the subclasses say which losses they take and how labels become targets."""

    #: what ``fit`` takes of each parameter (scikit-learn's declaration, checked by ``_check_params``);
    #: each estimator narrows ``loss`` to the kinds it takes
    _parameter_constraints: dict = {"loss": [None, _Loss], **_COMMON_CONSTRAINTS}
    #: whether it ranks (its default metric)
    _ranking = False

    def __init__(
        self,
        loss=None,
        *,
        engine="xgboost",
        device="cpu",
        n_estimators=100,
        learning_rate=0.1,
        max_depth=None,
        num_leaves=None,
        min_child_weight=None,
        subsample=1.0,
        colsample_bytree=1.0,
        reg_lambda=None,
        early_stopping_rounds=None,
        eval_metric=None,
        random_state=None,
        n_jobs=None,
        engine_params=None,
    ):
        self.loss = loss
        self.engine = engine
        self.device = device
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.num_leaves = num_leaves
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_metric = eval_metric
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.engine_params = engine_params

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        return tags

    # -- validation ------------------------------------------------------------------------

    def _check_params(self):
        """Validate every parameter (``_parameter_constraints``, then the rules that join parameters
        or need the engine: a device the engine offers, and usable here); returns the engine object.
        Called directly rather than through ``_fit_context``: ``load_model`` checks a file's parameters
        here too, and the rest of ``fit`` relies on them whatever ``skip_parameter_validation`` says."""
        self._validate_params()
        check_engine_params(self.engine_params)
        engine = get_engine(self.engine)
        engine.check_device(self.device)
        engine.require()
        if self.device != "cpu":
            reason = engine.gpu_problem(self.device)
            if reason is not None:
                kind = "CUDA" if self.device == "cuda" else "OpenCL"
                raise ValueError(
                    f"device={self.device!r} needs a usable {kind} GPU for engine={engine.name!r}: {reason}"
                )
        return engine

    def _fit_loss(self, default, y=None, sample_weight=None):
        """The loss to fit (``loss`` or the default), made for the training
        targets ``y`` and weights (``loss.for_targets``: a region given as quantiles is resolved on them);
        remembered as ``loss_``."""
        loss = default if self.loss is None else self.loss  # its kind: _parameter_constraints
        if y is not None:
            loss = loss.for_targets(y, sample_weight)
        self.loss_ = loss
        return loss

    def _validate_X(self, X, reset, name="X"):
        check_feature_columns(X, name)
        return validate_data(
            self, X, reset=reset, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
        )

    def _validate_X_y(self, X, y, y_numeric):
        check_feature_columns(X)
        return validate_data(
            self, X, y, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan", y_numeric=y_numeric,
        )

    def _eval_metric(self, loss):
        metric = self.eval_metric if self.eval_metric is not None else loss.default_metric(self._ranking)
        if isinstance(metric, str):
            name = metric.lower()
            if name == "loss":
                return LossMetric(loss)
            if name.startswith("ndcg"):
                rest = name[4:]
                no_relevant = "zero" if rest.endswith("-") else "one"
                rest = rest.rstrip("-")
                k = int(rest[1:]) if rest.startswith("@") and rest[1:].isdigit() else None
                if rest and k is None:
                    raise ValueError(f"eval_metric {metric!r}: write 'ndcg', 'ndcg@k' or 'ndcg@k-'")
                return NDCG(k=k, no_relevant=no_relevant)
            raise ValueError(
                f"eval_metric must be 'loss', 'ndcg@k' or a selboost metric (NDCG, RegionError, LossMetric), "
                f"got {metric!r}"
            )
        if isinstance(metric, _Metric):
            return metric
        return as_metric(metric)

    # -- engine parameters -------------------------------------------------------------------

    def _boosting_params(self, n_outputs):
        """The common parameters, validated, for ``Engine.params``; those left at None that this kind of
        estimator sets itself are filled from ``_default_params`` (the Dask estimators use the same)."""
        common = BoostingParams(
            learning_rate=self.learning_rate, max_depth=self.max_depth, num_leaves=self.num_leaves,
            min_child_weight=self.min_child_weight, subsample=self.subsample,
            colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda, seed=seed(self.random_state),
            threads=threads(self.n_jobs), device=self.device, n_outputs=n_outputs,
        )
        defaults = {name: value for name, value in self._default_params().items() if getattr(common, name) is None}
        return dataclasses.replace(common, **defaults)

    def _default_params(self):
        """Common parameters (``BoostingParams`` fields) this estimator sets where the user left None, in
        place of the engine's default; none by default."""
        return {}

    def _engine_params(self, engine, n_outputs, start_hessian=None):
        """The engine's parameters: the mapped common ones, then ``engine_params``. ``start_hessian()``
        gives the whole training set's hessian at the start (None without groups): a leaf minimum above
        half of it is warned about (``warn_unreachable_leaf``). The Dask estimators build theirs
        here too."""
        params = engine.params(self._boosting_params(n_outputs))
        if self.engine_params:
            params.update(self.engine_params)
            unknown = engine.unknown_params(self.engine_params)
            if unknown:
                warnings.warn(f"engine_params: {engine.name} does not use {unknown}: check their spelling "
                              f"(they are passed on, and {engine.name} ignores them)", UserWarning, stacklevel=4)
        if start_hessian is not None:
            warn_unreachable_leaf(engine.leaf_hessian_minimum(params), start_hessian())
        return params

    # -- training ------------------------------------------------------------------------------

    def _train(self, engine, X, label, bound, metric, evals, weight=None, callbacks=None, verbose=False):
        """Boost ``bound`` (the bound loss) from its optimal constant; ``evals``: list of (X, prepared
        metric). ``weight`` (per row) goes into the engine's data for its histogram sketch only; the
        bound loss already weights the gradients."""
        if self.early_stopping_rounds is not None and not evals:
            raise ValueError("early_stopping_rounds needs an eval_set to watch")
        check_storable(label, "y")
        if weight is not None:
            check_storable(weight, "sample_weight")
        init = np.asarray(bound.init_score(), dtype=np.float64)
        n_outputs = bound.shape[1] if len(bound.shape) == 2 else 1
        # the rankers' query groups (a multi-class loss's rows are groups of its outputs: no query order)
        start_hessian = (lambda: total_start_hessian(bound, engine.score_dtype)) if self._ranking else None
        params = self._engine_params(engine, n_outputs, start_hessian)
        result = engine.train(
            params, engine.input(X), bound, init, label=label, weight=weight,
            evals=[(engine.input(X_eval), prepared) for X_eval, prepared in evals], metric=metric,
            num_boost_round=self.n_estimators, early_stopping_rounds=self.early_stopping_rounds,
            callbacks=callbacks, verbose=verbose,
        )
        self.engine_ = engine.name
        self.booster_ = result.booster
        self.init_score_ = init if init.ndim else float(init)
        self.best_iteration_ = result.best_iteration
        self.best_score_ = result.best_score
        self.evals_result_ = dict(result.evals_result)
        self.n_outputs_ = n_outputs
        return self

    def _iteration_range(self, iteration_range):
        if iteration_range is not None:
            begin, end = (int(v) for v in iteration_range)
            if begin < 0 or end < begin:
                raise ValueError(f"iteration_range must be (begin, end) with 0 <= begin <= end, got {iteration_range!r}")
            return begin, end
        return None if self.best_iteration_ is None else (0, self.best_iteration_ + 1)

    def _raw_predict(self, X, iteration_range=None):
        check_is_fitted(self, "booster_")
        X = self._validate_X(X, reset=False)
        raw = get_engine(self.engine_).predict_raw(self.booster_, X, self.init_score_,
                                                   self._iteration_range(iteration_range))
        raw = np.asarray(raw, dtype=np.float64)
        if self.n_outputs_ > 1:
            raw = raw.reshape(X.shape[0], self.n_outputs_)
        return raw

    def get_booster(self):
        """The engine's fitted booster (``xgboost.Booster`` or ``lightgbm.Booster``)."""
        check_is_fitted(self, "booster_")
        return self.booster_

    @property
    def feature_importances_(self):
        """Total gain of each feature's splits, normalised to sum to 1 (all zero for a model without splits)."""
        check_is_fitted(self, "booster_")
        gain = get_engine(self.engine_).feature_importances(self.booster_, self.n_features_in_)
        total = gain.sum()
        return gain / total if total > 0 else gain

    def _sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64)

    def _eval_arrays(self, pairs):
        """The (X, y) pairs of ``eval_entries`` validated as the training data is (new arrays)."""
        arrays = []
        for i, (X_eval, y_eval) in enumerate(pairs):
            X_eval = self._validate_X(X_eval, reset=False, name=f"eval_set[{i}] X")
            y_eval = np.asarray(y_eval)
            if y_eval.ndim != 1 or y_eval.shape[0] != X_eval.shape[0]:
                raise ValueError(
                    f"eval_set[{i}]: y has shape {y_eval.shape} but X has {X_eval.shape[0]} rows "
                    "(y must be 1-d with one label per row)"
                )
            arrays.append((X_eval, y_eval))
        return arrays

    def _eval_weights(self, weights, pairs):
        return [None if w is None else _check_sample_weight(w, X_eval, dtype=np.float64)
                for w, (X_eval, _) in zip(weights, pairs)]

    # -- persistence -------------------------------------------------------------------------

    _FITTED = ("engine_", "loss_", "init_score_", "best_iteration_", "best_score_", "evals_result_",
               "n_outputs_", "n_features_in_", "feature_names_in_")

    def save_model(self, path):
        """Write the fitted model to ``path`` (JSON: the engine's own model text plus the initial
        score, the loss and the fitted attributes, as data: ``selboost._model_state``). ``load_model``
        restores it without ``pickle``: a model file cannot run code. What JSON cannot hold (a callable
        gain or metric) is a TypeError here; pickle the estimator instead."""
        check_is_fitted(self, "booster_")
        state = {"params": self.get_params(deep=False),
                 "fitted": {name: getattr(self, name) for name in self._FITTED + self._EXTRA_FITTED
                            if name in vars(self)}}
        payload = {"format": _MODEL_FORMAT, "version": _MODEL_VERSION, "estimator": type(self).__name__,
                   "engine": self.engine_, "engine_model": get_engine(self.engine_).save(self.booster_),
                   "state": _model_state.encode(state)}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(_model_state.seal(payload), handle)
        return self

    def load_model(self, path):
        """Restore a model written by ``save_model`` into this estimator (parameters included)."""
        with open(path, encoding="utf-8") as handle:
            try:
                payload = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} is not a selboost model file: {error}") from error
        if not isinstance(payload, dict) or payload.get("format") != _MODEL_FORMAT:
            raise ValueError(f"{path} is not a selboost model file")
        if payload.get("estimator") != type(self).__name__:
            raise ValueError(f"{path} holds a {payload.get('estimator')}, not a {type(self).__name__}")
        if payload.get("version") != _MODEL_VERSION:
            raise ValueError(f"{path} was written by an earlier selboost (model file version "
                             f"{payload.get('version')!r}; the first held a pickle, which is never loaded): fit "
                             "the model again and save it")
        try:
            _model_state.check_seal(payload)
            state = _model_state.decode(payload.get("state"))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if not (isinstance(state, dict) and isinstance(state.get("params"), dict)
                and isinstance(state.get("fitted"), dict)):
            raise ValueError(f"{path} is not a selboost model file: no parameters and fitted attributes")
        unknown = set(state["fitted"]) - set(self._FITTED + self._EXTRA_FITTED)
        if unknown:
            raise ValueError(f"{path} is not a selboost model file: unknown fitted attributes {sorted(unknown)}")
        self.set_params(**state["params"])
        fitted = dict(state["fitted"])
        fitted.setdefault("engine_", payload.get("engine"))
        fitted.setdefault("best_score_", None)
        for name, value in fitted.items():
            setattr(self, name, value)
        try:
            self._check_params()  # what fit would refuse
            init = np.asarray(self.init_score_, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
        if not np.all(np.isfinite(init)):
            raise ValueError(f"{path}: the initial score is not finite ({self.init_score_!r})")
        self.booster_ = get_engine(self.engine_).load(payload["engine_model"])
        return self

    _EXTRA_FITTED: tuple = ()


# ---------------------------------------------------------------- regressor


class SelectiveRegressor(RegressorMixin, _SelectiveBoosting):
    """Gradient boosting regression with a selective matching loss (default: square loss).

    ``loss=RegionLoss(lo, hi, strength=10)`` fits the targets in [lo, hi] ten times as carefully as
    square loss (``RegionLoss(0.9, quantiles=True)``: the top decile of the training targets, resolved
    at fit; ``loss__strength`` is grid-searchable); ``SelectiveLoss(link)`` takes any link. Pair it
    with ``eval_metric=RegionError(lo, hi)`` to watch the error in that region. With
    ``target="link"`` the targets lie in the link's range and ``predict`` returns ``h(raw score)``;
    otherwise it returns the raw score. ``score`` is R^2.
    """

    _parameter_constraints = {**_SelectiveBoosting._parameter_constraints, "loss": [None, SelectiveLoss]}

    def fit(self, X, y, sample_weight=None, *, eval_set=None, eval_sample_weight=None, callbacks=None,
            verbose=False):
        """Fit on X, y; ``eval_set``: list of (X, y) pairs for the metric and early stopping."""
        engine = self._check_params()
        X, y = self._validate_X_y(X, y, y_numeric=True)
        weight = self._sample_weight(sample_weight, X)
        loss = self._fit_loss(SelectiveLoss(Identity()), y, weight)
        bound = loss.bind_data(y, sample_weight=weight)
        metric = self._eval_metric(loss)
        pairs, extra = eval_entries(eval_set, eval_sample_weight=eval_sample_weight)
        pairs = self._eval_arrays(pairs)
        weights = self._eval_weights(extra["eval_sample_weight"], pairs)
        evals = [(X_eval, metric.prepare(y_eval, sample_weight=w)) for (X_eval, y_eval), w in zip(pairs, weights)]
        return self._train(engine, X, y, bound, metric, evals, weight, callbacks, verbose)

    def predict(self, X, output_margin=False, raw_score=False, iteration_range=None):
        """Predicted targets: the raw score, or ``h(raw)`` for a loss with ``target="link"``;
        ``output_margin`` / ``raw_score``: the raw score in any case."""
        raw = self._raw_predict(X, iteration_range)
        return raw if output_margin or raw_score else self.loss_.predict(raw)


# ---------------------------------------------------------------- classifier


class SelectiveClassifier(ClassifierMixin, _SelectiveBoosting):
    """Gradient boosting classification with a selective loss.

    Binary: a ``SelectiveLoss`` with ``target="link"`` and a bounded link (a sum of sigmoids), the
    classes mapped to the two ends of its range; the default ``0.25 * Sigmoid()`` is the logistic
    loss and ``predict_proba`` gives ``(h(z) - lo) / (hi - lo)``. Multi-class (or binary by choice):
    a ``MulticlassLoss`` (default ``MulticlassLoss()``, the softmax cross-entropy) with
    ``predict_proba = softmax(phi(z))``. ``score`` is the accuracy.
    """

    _EXTRA_FITTED = ("classes_", "n_classes_")
    _parameter_constraints = {**_SelectiveBoosting._parameter_constraints,
                              "loss": [None, SelectiveLoss, MulticlassLoss]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # a SelectiveLoss classifies two classes only
        tags.classifier_tags.multi_class = not isinstance(self.loss, SelectiveLoss)
        return tags

    def fit(self, X, y, sample_weight=None, *, eval_set=None, eval_sample_weight=None, callbacks=None,
            verbose=False):
        """Fit on X, y (any class labels); ``eval_set``: list of (X, y) pairs."""
        engine = self._check_params()
        X, y = self._validate_X_y(X, y, y_numeric=False)
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"SelectiveClassifier needs samples of at least 2 classes, got 1 class: {classes[0]!r}")
        self.classes_ = classes
        self.n_classes_ = k = int(classes.size)
        loss = self._fit_loss(SelectiveLoss(0.25 * Sigmoid(), target="link") if k == 2 else MulticlassLoss())
        weight = self._sample_weight(sample_weight, X)
        label = loss.class_targets(encoded, k)
        bound = loss.bind_data(label, sample_weight=weight, n_classes=k)
        metric = self._eval_metric(loss)
        evals = []
        pairs, extra = eval_entries(eval_set, eval_sample_weight=eval_sample_weight)
        pairs = self._eval_arrays(pairs)
        weights = self._eval_weights(extra["eval_sample_weight"], pairs)
        for (X_eval, y_eval), w in zip(pairs, weights):
            unknown = ~np.isin(y_eval, classes)
            if unknown.any():
                raise ValueError(
                    f"eval_set labels {np.unique(y_eval[unknown])[:5]} are not among the classes seen in y"
                )
            eval_label = loss.class_targets(np.searchsorted(classes, y_eval), k)
            n_outputs = loss.n_outputs(k)
            evals.append((X_eval, metric.prepare(eval_label, sample_weight=w, n_classes=n_outputs if n_outputs > 1 else None)))
        return self._train(engine, X, label, bound, metric, evals, weight, callbacks, verbose)

    def predict_proba(self, X, iteration_range=None):
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        raw = self._raw_predict(X, iteration_range)
        return self.loss_.predict_proba(raw)

    def predict(self, X, output_margin=False, raw_score=False, iteration_range=None):
        """The most probable class; ``output_margin`` / ``raw_score``: the raw scores instead."""
        if output_margin or raw_score:
            return self._raw_predict(X, iteration_range)
        proba = self.predict_proba(X, iteration_range)
        return self.classes_[np.argmax(proba, axis=1)]


# ---------------------------------------------------------------- ranker


def total_start_hessian(bound, score_dtype):
    """The sum over the whole training set of the hessians at the start (every score 0), or None for a
    loss without groups. Computed with the dtypes of the engine's rounds (``score_dtype`` scores,
    float32 hessians), which compile the same kernel as the rounds."""
    if getattr(bound, "group_ptr", None) is None:
        return None
    hess = bound.gradient_hessian(np.zeros(bound.shape, dtype=score_dtype), dtype=np.float32)[1]
    return float(hess.sum(dtype=np.float64))


def warn_unreachable_leaf(minimum, total):
    """Warn when the training set's start hessian (its ``total`` is given) is below twice the engine's
    leaf minimum: then no split leaves both children at the minimum, the first tree is a single leaf, and
    so is every later one (the softmax's hessians only shrink as the scores separate)."""
    if total is None or minimum <= 0.0:
        return
    if 0.0 < total < 2.0 * minimum:  # 0: no group holds an order to learn, whatever the setting
        warnings.warn(
            f"the leaf hessian minimum ({minimum:g}: min_child_weight, or LightGBM's min_sum_hessian_in_leaf) "
            f"exceeds half the hessian of the whole training set at the start ({total:.4g}): no split can "
            f"leave both sides at the minimum and the model will stay constant. Set min_child_weight below "
            f"{total / 2.0:.4g}, or offer more hessian: ListwiseLoss's group_scale='auto' (the default) or a "
            f"larger number, or a steeper transform (a lower temperature)",
            UserWarning, stacklevel=4,
        )


class SelectiveRanker(_SelectiveBoosting):
    """Learning to rank with a listwise or pairwise selective loss (default ``ListwiseLoss()``).

    ``fit(X, y, group=sizes)`` or ``fit(X, y, qid=ids)``: rows of one query must be consecutive and
    ``qid`` sorted (a ValueError otherwise). A pandas DataFrame ``X`` may carry the query ids as a
    ``qid`` column instead (as for ``xgboost.XGBRanker``), which lets ``cross_val_score`` and
    ``GridSearchCV`` split and score it. ``predict`` returns one score per row (higher = ranked first);
    ``score`` is the mean NDCG@k. A ``SelectiveLoss`` is accepted too (pointwise ranking).
    """

    _parameter_constraints = {**_SelectiveBoosting._parameter_constraints,
                              "loss": [None, ListwiseLoss, PairwiseLoss, SelectiveLoss]}
    _ranking = True

    def _default_params(self):
        """``reg_lambda`` 1 on both engines (XGBoost's default; LightGBM's is 0).

        With ``ListwiseLoss``'s ``group_scale="auto"`` the hessians of the training set sum to 32 at the
        start (times the transform's squared slope); LightGBM's ``lambda_l2=0`` meets hessians that small
        with large leaf values -G/H and overfits, and XGBoost's brake of 1 trains better
        (``benchmarks/RESULTS.md``, the ranker defaults sections).
        """
        return {"reg_lambda": 1.0}

    def fit(self, X, y, *, group=None, qid=None, sample_weight=None, group_weight=None, eval_set=None,
            eval_group=None, eval_qid=None, callbacks=None, verbose=False):
        """Fit on query groups; ``sample_weight`` per row, ``group_weight`` per query group."""
        engine = self._check_params()
        X, qid = _qid_column(X, qid)
        loss = self._fit_loss(ListwiseLoss())
        X, y = self._validate_X_y(X, y, y_numeric=True)
        sizes = _resolve_groups(group, qid, X.shape[0])
        weight = self._sample_weight(sample_weight, X)
        if group_weight is not None:
            group_weight = np.asarray(group_weight, dtype=np.float64)
            if group_weight.shape != (sizes.size,):
                raise ValueError(
                    f"group_weight must hold one weight per group ({sizes.size}), got shape {group_weight.shape}"
                )
        bound = loss.bind_data(y, sizes, weight, group_weight)
        metric = self._eval_metric(loss)
        pairs, eval_groups = self._eval_ranking(eval_set, eval_group, eval_qid)
        evals = [(X_eval, metric.prepare(y_eval, group=g)) for (X_eval, y_eval), g in zip(pairs, eval_groups)]
        return self._train(engine, X, y, bound, metric, evals, None, callbacks, verbose)

    def _eval_ranking(self, eval_set, eval_group, eval_qid):
        """The eval sets as (X, y) arrays and their group sizes; a DataFrame's ``qid`` column is read
        as the query ids (into new lists: the caller's are left as they are)."""
        pairs, extra = eval_entries(eval_set, eval_group=eval_group, eval_qid=eval_qid)
        qids = extra["eval_qid"]
        for i, (X_eval, y_eval) in enumerate(pairs):
            X_eval, qids[i] = _qid_column(X_eval, qids[i], f"eval_qid[{i}]")
            pairs[i] = (X_eval, y_eval)
        pairs = self._eval_arrays(pairs)
        groups = [_resolve_groups(group, qid, X_eval.shape[0], f"eval_group[{i}]", f"eval_qid[{i}]")
                  for i, ((X_eval, _), group, qid) in enumerate(zip(pairs, extra["eval_group"], qids))]
        return pairs, groups

    def predict(self, X, output_margin=False, raw_score=False, iteration_range=None):
        """Ranking scores, one per row (raw scores: ``output_margin`` / ``raw_score`` change nothing)."""
        X, _ = _qid_column(X, None)
        return self._raw_predict(X, iteration_range)

    def score(self, X, y, group=None, qid=None, k=10, no_relevant="one"):
        """Mean NDCG@k of the predicted scores over the query groups (see ``selboost.metrics.ndcg``)."""
        X, qid = _qid_column(X, qid)
        scores = self.predict(X)
        sizes = _resolve_groups(group, qid, scores.shape[0])
        return ndcg(y, scores, sizes, k=k, no_relevant=no_relevant)
