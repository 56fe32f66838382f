"""Scikit-learn estimators boosting a selective loss with XGBoost or LightGBM.

``SelectiveRegressor``, ``SelectiveClassifier`` and ``SelectiveRanker`` drive ``xgboost.train`` /
``lightgbm.train`` with a selboost objective (``selboost.objectives``), start from the loss's optimal
constant (XGBoost keeps it as ``base_score`` in the model; for LightGBM it is added back at prediction)
and evaluate ``eval_set`` with a selboost metric (``selboost.metrics``) for early stopping.

Common parameters:

- ``loss``: a selboost loss object (defaults: ``SelectiveLoss(Identity())`` -> square loss;
  ``ListwiseLoss()``; binary ``SelectiveLoss(0.25 * Sigmoid(), target="link")`` -> logistic loss,
  multi-class ``MulticlassLoss()`` -> softmax cross-entropy);
- ``backend``: ``"xgboost"`` or ``"lightgbm"``; ``device``: ``"cpu"``, ``"cuda"`` (XGBoost
  ``device="cuda"``, with the gradients computed on the GPU by ``selboost.cuda``; LightGBM
  ``device_type="cuda"``, which needs a CUDA build of LightGBM) or ``"gpu"`` (LightGBM's OpenCL
  ``device_type="gpu"`` of the PyPI wheel). LightGBM takes custom gradients only from the host: it
  copies them to the device every round (gradient and hessian, 8 bytes per row and output; its
  cost has not been measured on a GPU yet).
  Without a usable device ``fit`` raises a ValueError;
- ``n_estimators``, ``learning_rate``, ``max_depth``, ``num_leaves``, ``min_child_weight``,
  ``subsample``, ``colsample_bytree``, ``reg_lambda``, ``random_state``, ``n_jobs``: mapped to each
  engine's names (``None`` keeps the engine's default);
- ``early_stopping_rounds``: stop when the metric on the *last* ``eval_set`` entry has not improved
  for this many rounds; ``eval_metric``: ``"loss"`` (the mean selective loss), ``"ndcg@k"`` or a
  selboost metric object (``NDCG``, ``RegionError``, ``LossMetric``);
- ``engine_params``: any further engine parameter, passed through (and winning over the above).
"""

from __future__ import annotations

import base64
import json
import numbers
import pickle
import warnings

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from selboost.links import Identity, Sigmoid
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss
from selboost.metrics import NDCG, LossMetric, _as_metric, _Metric, ndcg
from selboost.objectives import (
    LightGBMObjective,
    XGBoostObjective,
    check_loss,
    init_score,
)

__all__ = ["SelectiveRegressor", "SelectiveClassifier", "SelectiveRanker", "check_gpu"]

_BACKENDS = ("xgboost", "lightgbm")
_DEVICES = ("cpu", "cuda", "gpu")
_MODEL_FORMAT = "selboost-model"


# ---------------------------------------------------------------- GPU detection

_GPU_STATUS: dict = {}


def _probe_xgboost_gpu():
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA", False):
        return "this XGBoost build has no CUDA support"
    data = xgb.DMatrix(np.arange(8, dtype=np.float32).reshape(4, 2), label=np.arange(4, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        booster = xgb.train({"device": "cuda", "verbosity": 0}, data, 1)
    device = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    if not device.startswith("cuda"):
        return "XGBoost found no visible GPU (it would fall back to the CPU)"
    return None


def _probe_lightgbm_gpu(device_type="cuda"):
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.normal(size=(64, 2)), label=rng.normal(size=64), params={"verbose": -1})
    try:
        lgb.train({"device_type": device_type, "verbose": -1, "num_leaves": 2}, data, 1)
    except Exception as error:  # LightGBMError: no such device support in this build, or no device
        return f"LightGBM cannot train with device_type={device_type!r}: {str(error).splitlines()[0]}"
    return None


def check_gpu(backend, device="cuda"):
    """None when ``backend`` can train on ``device`` ("cuda", or LightGBM's OpenCL "gpu") here, else
    the reason (a tiny trial, cached)."""
    key = (backend, device)
    if key not in _GPU_STATUS:
        _GPU_STATUS[key] = _probe_xgboost_gpu() if backend == "xgboost" else _probe_lightgbm_gpu(device)
    return _GPU_STATUS[key]


# ---------------------------------------------------------------- parameter checks


def check_engine_params(engine_params):
    """``engine_params``: None or a dict that leaves the objective to the loss."""
    if engine_params is None:
        return
    if not isinstance(engine_params, dict):
        raise TypeError(f"engine_params must be a dict or None, got {engine_params!r}")
    for key in ("objective", "obj", "fobj"):
        if key in engine_params:
            raise ValueError(f"engine_params must not set {key!r}: the objective is the loss (loss=)")


def _check_int(value, name, low, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def _check_real(value, name, low, high=np.inf, low_open=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < low or (low_open and value == low) or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    return value


def _seed(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) % (2**31 - 1)
    return int(check_random_state(random_state).randint(2**31 - 1))


def _groups_from_qid(qid, n_rows, name="qid"):
    qid = np.asarray(qid)
    if qid.ndim != 1 or qid.shape[0] != n_rows:
        raise ValueError(f"{name} must hold one query id per row ({n_rows}), got shape {qid.shape}")
    if qid.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numeric query ids, got dtype {qid.dtype}")
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
            f"or {qid_name}= (sorted per-row query ids)"
        )
    if qid is not None:
        return _groups_from_qid(qid, n_rows, qid_name)
    sizes = np.asarray(group)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu" or (sizes <= 0).any():
        raise ValueError(f"{group_name} must be a non-empty 1-d array of positive integer group sizes")
    if int(sizes.sum()) != n_rows:
        raise ValueError(f"{group_name} sizes sum to {int(sizes.sum())}, but X has {n_rows} rows")
    return sizes.astype(np.int64)


class _LightGBMEarlyStopping:
    """Early stopping on one validation set (the last one), as XGBoost's callback does."""

    order = 30

    def __init__(self, rounds, data_name, maximize):
        self.rounds = rounds
        self.data_name = data_name
        self.maximize = maximize
        self.best = None
        self.best_iteration = 0
        self.best_result = None

    def __call__(self, env):
        import lightgbm as lgb

        for item in env.evaluation_result_list or ():
            if item[0] != self.data_name:
                continue
            score = item[2]
            better = self.best is None or (score > self.best if self.maximize else score < self.best)
            if better:
                self.best, self.best_iteration = score, env.iteration
                self.best_result = list(env.evaluation_result_list)
            elif env.iteration - self.best_iteration >= self.rounds:
                raise lgb.callback.EarlyStopException(self.best_iteration, self.best_result)


# ---------------------------------------------------------------- the shared base


class _SelectiveBoosting(BaseEstimator):
    def __init__(
        self,
        loss=None,
        *,
        backend="xgboost",
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
        self.backend = backend
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
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {list(_BACKENDS)}, got {self.backend!r}")
        if self.device not in _DEVICES:
            raise ValueError(f"device must be one of {list(_DEVICES)}, got {self.device!r}")
        _check_int(self.n_estimators, "n_estimators", 1)
        _check_real(self.learning_rate, "learning_rate", 0.0, low_open=True)
        _check_int(self.max_depth, "max_depth", 1, allow_none=True)
        _check_int(self.num_leaves, "num_leaves", 2, allow_none=True)
        _check_real(self.min_child_weight, "min_child_weight", 0.0, allow_none=True)
        _check_real(self.subsample, "subsample", 0.0, 1.0, low_open=True)
        _check_real(self.colsample_bytree, "colsample_bytree", 0.0, 1.0, low_open=True)
        _check_real(self.reg_lambda, "reg_lambda", 0.0, allow_none=True)
        _check_int(self.early_stopping_rounds, "early_stopping_rounds", 1, allow_none=True)
        if self.n_jobs is not None and self.n_jobs != -1:
            _check_int(self.n_jobs, "n_jobs", 1)
        check_engine_params(self.engine_params)
        if self.loss is not None:
            check_loss(self.loss)
        if self.device == "gpu" and self.backend != "lightgbm":
            raise ValueError("device='gpu' is LightGBM's OpenCL build; use device='cuda' with backend='xgboost'")
        if self.device != "cpu":
            reason = check_gpu(self.backend, self.device)
            if reason is not None:
                kind = "CUDA" if self.device == "cuda" else "OpenCL"
                raise ValueError(
                    f"device={self.device!r} needs a usable {kind} GPU for backend={self.backend!r}: {reason}"
                )
        try:
            __import__(self.backend)
        except ImportError as error:  # pragma: no cover - both engines are test dependencies
            raise ImportError(f"backend={self.backend!r} needs the {self.backend} package: {error}") from error

    def _validate_X(self, X, reset):
        return validate_data(
            self, X, reset=reset, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
        )

    def _validate_X_y(self, X, y, y_numeric):
        return validate_data(
            self, X, y, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan", y_numeric=y_numeric,
        )

    def _eval_metric(self, loss, default):
        metric = self.eval_metric if self.eval_metric is not None else default
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
        return _as_metric(metric)

    # -- engine parameters -------------------------------------------------------------------

    def _engine_params(self, n_outputs):
        seed = _seed(self.random_state)
        if self.backend == "xgboost":
            params = {"eta": self.learning_rate, "tree_method": "hist", "device": self.device,
                      "verbosity": 0, "disable_default_eval_metric": 1}
            optional = {"max_depth": self.max_depth, "max_leaves": self.num_leaves,
                        "min_child_weight": self.min_child_weight, "lambda": self.reg_lambda,
                        "seed": seed, "nthread": self._threads()}
            if self.subsample != 1.0:
                params["subsample"] = self.subsample
            if self.colsample_bytree != 1.0:
                params["colsample_bytree"] = self.colsample_bytree
            if n_outputs > 1:
                params["num_class"] = n_outputs
        else:
            params = {"learning_rate": self.learning_rate, "verbose": -1, "metric": "None"}
            if self.device != "cpu":
                params["device_type"] = self.device
            optional = {"max_depth": self.max_depth, "num_leaves": self.num_leaves,
                        "min_sum_hessian_in_leaf": self.min_child_weight, "lambda_l2": self.reg_lambda,
                        "seed": seed, "num_threads": self._threads()}
            if self.subsample != 1.0:
                params.update(bagging_fraction=self.subsample, bagging_freq=1)
            if self.colsample_bytree != 1.0:
                params["feature_fraction"] = self.colsample_bytree
            if n_outputs > 1:
                params["num_class"] = n_outputs
        params.update({key: value for key, value in optional.items() if value is not None})
        params.update(self.engine_params or {})
        return params

    def _threads(self):
        return None if self.n_jobs in (None, -1) else int(self.n_jobs)

    # -- training ------------------------------------------------------------------------------

    def _train(self, X, label, bound, init, metric, evals, weight=None):
        """Boost ``bound`` (the bound loss) from ``init``; ``evals``: list of (X, prepared metric).

        ``weight`` (per row) goes into the engine's data for its histogram sketch only; the bound
        loss already weights the gradients."""
        n_outputs = bound.shape[1] if len(bound.shape) == 2 else 1
        params = self._engine_params(n_outputs)
        rounds = self.n_estimators
        stopping = self.early_stopping_rounds
        if stopping is not None and not evals:
            raise ValueError("early_stopping_rounds needs an eval_set to watch")
        init_array = np.asarray(init, dtype=np.float64)
        X = self._engine_input(X, self.backend)
        evals = [(self._engine_input(X_eval, self.backend), prepared) for X_eval, prepared in evals]
        results = {}
        names = [f"eval_{i}" for i in range(len(evals))]
        if self.backend == "xgboost":
            import xgboost as xgb

            objective = XGBoostObjective(self.loss_, device=self.device)
            params["base_score"] = init_array.tolist() if init_array.ndim else float(init_array)
            dtrain = xgb.DMatrix(X, label=label if np.ndim(label) == 1 else None, weight=weight)
            objective.register(dtrain, bound)
            watch = []
            for (X_eval, prepared), name in zip(evals, names):
                deval = xgb.DMatrix(X_eval)
                metric._cache[deval] = prepared
                watch.append((deval, name))
            callbacks = []
            if stopping is not None:
                callbacks.append(xgb.callback.EarlyStopping(
                    rounds=stopping, metric_name=metric.name, data_name=names[-1],
                    maximize=metric.higher_is_better, save_best=False))
            from selboost.metrics import xgboost_metric

            booster = xgb.train(
                params, dtrain, rounds, evals=watch, obj=objective,
                custom_metric=xgboost_metric(metric) if watch else None,
                evals_result=results, verbose_eval=False, callbacks=callbacks,
            )
            best = booster.best_iteration if stopping is not None else None
        else:
            import lightgbm as lgb

            objective = LightGBMObjective(self.loss_)
            params["objective"] = objective
            # keep features LightGBM would pre-filter as unsplittable: with a custom objective and no
            # feature left, LightGBM 4 aborts instead of growing constant trees (small data)
            params.setdefault("feature_pre_filter", False)
            dataset_params = {key: params[key] for key in ("verbose", "feature_pre_filter", "max_bin",
                                                           "min_data_in_bin", "min_data_in_leaf")
                              if key in params}
            margin = np.tile(init_array, (X.shape[0], 1)) if init_array.ndim else np.full(X.shape[0], float(init))
            dtrain = lgb.Dataset(X, label=label if np.ndim(label) == 1 else None, init_score=margin, weight=weight,
                                 params=dataset_params, free_raw_data=True)
            objective.register(dtrain, bound)
            valid = []
            for X_eval, prepared in evals:
                margin = (np.tile(init_array, (X_eval.shape[0], 1)) if init_array.ndim
                          else np.full(X_eval.shape[0], float(init)))
                deval = lgb.Dataset(X_eval, init_score=margin, reference=dtrain, params=dataset_params)
                metric._cache[deval] = prepared
                valid.append(deval)
            callbacks = [lgb.record_evaluation(results)] if valid else []
            stopper = None
            if stopping is not None:
                stopper = _LightGBMEarlyStopping(stopping, names[-1], metric.higher_is_better)
                callbacks.append(stopper)
            from selboost.metrics import lightgbm_metric

            booster = lgb.train(
                params, dtrain, rounds, valid_sets=valid or None, valid_names=names or None,
                feval=lightgbm_metric(metric) if valid else None, callbacks=callbacks,
            )
            best = stopper.best_iteration if stopper is not None else None
        self.booster_ = booster
        self.init_score_ = init_array if init_array.ndim else float(init_array)
        self.best_iteration_ = best
        self.evals_result_ = {name: dict(value) for name, value in results.items()}
        self.n_outputs_ = n_outputs
        return self

    def _raw_predict(self, X):
        check_is_fitted(self, "booster_")
        X = self._engine_input(self._validate_X(X, reset=False), self.backend_)
        rounds = None if self.best_iteration_ is None else self.best_iteration_ + 1
        if self.backend_ == "xgboost":
            import xgboost as xgb

            kwargs = {} if rounds is None else {"iteration_range": (0, rounds)}
            raw = self.booster_.predict(xgb.DMatrix(X), output_margin=True, **kwargs)
        else:
            raw = self.booster_.predict(X, raw_score=True, num_iteration=rounds if rounds is not None else -1)
            raw = raw + self.init_score_
        raw = np.asarray(raw, dtype=np.float64)
        if self.n_outputs_ > 1:
            raw = raw.reshape(X.shape[0], self.n_outputs_)
        return raw

    @staticmethod
    def _engine_input(X, backend):
        # LightGBM takes scipy's sparse matrices but would copy-convert the newer sparse arrays
        if backend == "lightgbm" and sparse.issparse(X) and not isinstance(X, sparse.spmatrix):
            return sparse.csr_matrix(X)
        return X

    def _fit_common(self):
        self._check_params()
        self.backend_ = self.backend

    def _sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64)

    def _eval_pairs(self, eval_set, name="eval_set"):
        if eval_set is None:
            return []
        if isinstance(eval_set, tuple) and len(eval_set) == 2 and not isinstance(eval_set[0], tuple):
            eval_set = [eval_set]
        if not isinstance(eval_set, (list, tuple)):
            raise TypeError(f"{name} must be a list of (X, y) pairs, got {type(eval_set).__name__}")
        pairs = []
        for i, pair in enumerate(eval_set):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TypeError(f"{name}[{i}] must be an (X, y) pair")
            X_eval = self._validate_X(pair[0], reset=False)
            y_eval = np.asarray(pair[1])
            if y_eval.ndim != 1 or y_eval.shape[0] != X_eval.shape[0]:
                raise ValueError(
                    f"{name}[{i}]: y has shape {y_eval.shape} but X has {X_eval.shape[0]} rows "
                    "(y must be 1-d with one label per row)"
                )
            pairs.append((X_eval, y_eval))
        return pairs

    def _eval_weights(self, eval_sample_weight, pairs):
        if eval_sample_weight is None:
            return [None] * len(pairs)
        if len(eval_sample_weight) != len(pairs):
            raise ValueError(
                f"eval_sample_weight has {len(eval_sample_weight)} entries, eval_set has {len(pairs)}"
            )
        return [None if w is None else _check_sample_weight(w, X_eval, dtype=np.float64)
                for w, (X_eval, _) in zip(eval_sample_weight, pairs)]

    # -- persistence -------------------------------------------------------------------------

    _FITTED = ("backend_", "loss_", "init_score_", "best_iteration_", "evals_result_", "n_outputs_",
               "n_features_in_", "feature_names_in_")

    def save_model(self, path):
        """Write the fitted model to ``path`` (JSON: the engine's own model text plus the initial
        score, the loss and the fitted attributes). ``load_model`` restores it; loading unpickles the
        loss, so load only files you trust."""
        check_is_fitted(self, "booster_")
        if self.backend_ == "xgboost":
            engine_model = bytes(self.booster_.save_raw("json")).decode("utf-8")
        else:
            engine_model = self.booster_.model_to_string()
        state = {"params": self.get_params(deep=False),
                 "fitted": {name: getattr(self, name) for name in self._FITTED + self._EXTRA_FITTED
                            if hasattr(self, name)}}
        payload = {"format": _MODEL_FORMAT, "version": 1, "estimator": type(self).__name__,
                   "backend": self.backend_, "engine_model": engine_model,
                   "state": base64.b64encode(pickle.dumps(state)).decode("ascii")}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
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
        if payload["estimator"] != type(self).__name__:
            raise ValueError(f"{path} holds a {payload['estimator']}, not a {type(self).__name__}")
        state = pickle.loads(base64.b64decode(payload["state"]))
        self.set_params(**state["params"])
        for name, value in state["fitted"].items():
            setattr(self, name, value)
        if payload["backend"] == "xgboost":
            import xgboost as xgb

            self.booster_ = xgb.Booster(model_file=bytearray(payload["engine_model"].encode("utf-8")))
        else:
            import lightgbm as lgb

            self.booster_ = lgb.Booster(model_str=payload["engine_model"])
        return self

    _EXTRA_FITTED: tuple = ()


# ---------------------------------------------------------------- regressor


class SelectiveRegressor(RegressorMixin, _SelectiveBoosting):
    """Gradient boosting regression with a selective matching loss (default: square loss).

    ``loss=SelectiveLoss(Identity() + 9 * Sigmoid(center=c, scale=s))`` fits the targets near ``c``
    ten times as carefully as square loss; pair it with ``eval_metric=RegionError(lo, hi)`` to watch
    the error in that region. With ``target="link"`` the targets lie in the link's range and
    ``predict`` returns ``h(raw score)``; otherwise it returns the raw score. ``score`` is R^2.
    """

    def fit(self, X, y, sample_weight=None, eval_set=None, eval_sample_weight=None):
        """Fit on X, y; ``eval_set``: list of (X, y) pairs for the metric and early stopping."""
        self._fit_common()
        loss = SelectiveLoss(Identity()) if self.loss is None else self.loss
        if not isinstance(loss, SelectiveLoss):
            raise TypeError(f"SelectiveRegressor needs a SelectiveLoss, got {type(loss).__name__}")
        X, y = self._validate_X_y(X, y, y_numeric=True)
        weight = self._sample_weight(sample_weight, X)
        bound = loss.bind(y, weight)
        self.loss_ = loss
        metric = self._eval_metric(loss, "loss")
        pairs = self._eval_pairs(eval_set)
        weights = self._eval_weights(eval_sample_weight, pairs)
        evals = [(X_eval, metric.prepare(y_eval, sample_weight=w)) for (X_eval, y_eval), w in zip(pairs, weights)]
        return self._train(X, y, bound, bound.init_score(), metric, evals, weight)

    def predict(self, X):
        """Predicted targets: the raw score, or ``h(raw)`` for a loss with ``target="link"``."""
        raw = self._raw_predict(X)
        if self.loss_.target == "link":
            return self.loss_.link.h(raw)
        return raw


# ---------------------------------------------------------------- classifier


def _softmax_probabilities(transform, raw):
    phi = transform.h(raw)
    phi = phi - phi.max(axis=1, keepdims=True)
    e = np.exp(phi)
    return e / e.sum(axis=1, keepdims=True)


class SelectiveClassifier(ClassifierMixin, _SelectiveBoosting):
    """Gradient boosting classification with a selective loss.

    Binary: a ``SelectiveLoss`` with ``target="link"`` and a bounded link (a sum of sigmoids), the
    classes mapped to the two ends of its range; the default ``0.25 * Sigmoid()`` is the logistic
    loss and ``predict_proba`` gives ``(h(z) - lo) / (hi - lo)``. Multi-class (or binary by choice):
    a ``MulticlassLoss`` (default ``MulticlassLoss()``, the softmax cross-entropy) with
    ``predict_proba = softmax(phi(z))``. ``score`` is the accuracy.
    """

    _EXTRA_FITTED = ("classes_", "n_classes_")

    def fit(self, X, y, sample_weight=None, eval_set=None, eval_sample_weight=None):
        """Fit on X, y (any class labels); ``eval_set``: list of (X, y) pairs."""
        self._fit_common()
        X, y = self._validate_X_y(X, y, y_numeric=False)
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"SelectiveClassifier needs samples of at least 2 classes, got 1 class: {classes[0]!r}")
        self.classes_ = classes
        self.n_classes_ = int(classes.size)
        loss = self.loss
        if loss is None:
            loss = SelectiveLoss(0.25 * Sigmoid(), target="link") if classes.size == 2 else MulticlassLoss()
        weight = self._sample_weight(sample_weight, X)
        if isinstance(loss, SelectiveLoss):
            if classes.size != 2:
                raise ValueError(
                    f"a SelectiveLoss classifies two classes, y has {classes.size}: use MulticlassLoss"
                )
            if loss.target != "link" or not loss.link.is_bounded:
                raise ValueError(
                    "a binary SelectiveClassifier needs SelectiveLoss(link, target='link') with a bounded "
                    "link (a sum of sigmoids), e.g. SelectiveLoss(0.25 * Sigmoid(), target='link')"
                )
            lo, hi = loss.link.range
            label = np.where(encoded == 1, hi, lo).astype(np.float64)
            bound = loss.bind(label, weight)
            init = bound.init_score()
        elif isinstance(loss, MulticlassLoss):
            label = encoded.astype(np.float64)
            bound = loss.bind(label, classes.size, weight)
            init = init_score(loss, label, sample_weight=weight, n_classes=classes.size)
        else:
            raise TypeError(f"SelectiveClassifier needs a SelectiveLoss or a MulticlassLoss, got {type(loss).__name__}")
        self.loss_ = loss
        metric = self._eval_metric(loss, "loss")
        evals = []
        pairs = self._eval_pairs(eval_set)
        weights = self._eval_weights(eval_sample_weight, pairs)
        for (X_eval, y_eval), w in zip(pairs, weights):
            unknown = ~np.isin(y_eval, classes)
            if unknown.any():
                raise ValueError(
                    f"eval_set labels {np.unique(y_eval[unknown])[:5]} are not among the classes seen in y"
                )
            enc = np.searchsorted(classes, y_eval).astype(np.float64)
            eval_label = np.where(enc == 1, hi, lo) if isinstance(loss, SelectiveLoss) else enc
            evals.append((X_eval, metric.prepare(eval_label, sample_weight=w,
                                                 n_classes=None if isinstance(loss, SelectiveLoss) else classes.size)))
        return self._train(X, label, bound, init, metric, evals, weight)

    def predict_proba(self, X):
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        raw = self._raw_predict(X)
        if isinstance(self.loss_, SelectiveLoss):
            lo, hi = self.loss_.link.range
            p = np.clip((self.loss_.link.h(raw) - lo) / (hi - lo), 0.0, 1.0)
            return np.column_stack([1.0 - p, p])
        return _softmax_probabilities(self.loss_.transform, raw)

    def predict(self, X):
        """The most probable class."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


# ---------------------------------------------------------------- ranker


class SelectiveRanker(_SelectiveBoosting):
    """Learning to rank with a listwise or pairwise selective loss (default ``ListwiseLoss()``).

    ``fit(X, y, group=sizes)`` or ``fit(X, y, qid=ids)``: rows of one query must be consecutive and
    ``qid`` sorted (a ValueError otherwise). ``predict`` returns one score per row (higher = ranked
    first); ``score`` is the mean NDCG@k. A ``SelectiveLoss`` is accepted too (pointwise ranking).
    """

    def fit(self, X, y, group=None, qid=None, sample_weight=None, group_weight=None,
            eval_set=None, eval_group=None, eval_qid=None):
        """Fit on query groups; ``sample_weight`` per row, ``group_weight`` per query group."""
        self._fit_common()
        loss = ListwiseLoss() if self.loss is None else self.loss
        X, y = self._validate_X_y(X, y, y_numeric=True)
        sizes = _resolve_groups(group, qid, X.shape[0])
        weight = self._sample_weight(sample_weight, X)
        if isinstance(loss, SelectiveLoss):
            if group_weight is not None:
                gw = np.asarray(group_weight, dtype=np.float64)
                if gw.shape != (sizes.size,):
                    raise ValueError(
                        f"group_weight must hold one weight per group ({sizes.size}), got shape {gw.shape}"
                    )
                expanded = np.repeat(gw, sizes)
                weight = expanded if weight is None else weight * expanded
            bound = loss.bind(y, weight)
            init = bound.init_score()
        elif isinstance(loss, (ListwiseLoss, PairwiseLoss)):
            bound = loss.bind(y, sizes, weight, group_weight)
            init = 0.0
        else:
            raise TypeError(
                f"SelectiveRanker needs a ListwiseLoss, PairwiseLoss or SelectiveLoss, got {type(loss).__name__}"
            )
        self.loss_ = loss
        metric = self._eval_metric(loss, "ndcg@10")
        pairs = self._eval_pairs(eval_set)
        eval_groups = self._eval_groups(pairs, eval_group, eval_qid)
        evals = [(X_eval, metric.prepare(y_eval, group=g)) for (X_eval, y_eval), g in zip(pairs, eval_groups)]
        return self._train(X, y, bound, init, metric, evals)

    @staticmethod
    def _eval_groups(pairs, eval_group, eval_qid):
        if not pairs:
            if eval_group is not None or eval_qid is not None:
                raise ValueError("eval_group / eval_qid given without eval_set")
            return []
        for name, value in (("eval_group", eval_group), ("eval_qid", eval_qid)):
            if value is not None and len(value) != len(pairs):
                raise ValueError(f"{name} has {len(value)} entries, eval_set has {len(pairs)}")
        groups = []
        for i, (X_eval, _) in enumerate(pairs):
            group = None if eval_group is None else eval_group[i]
            qid = None if eval_qid is None else eval_qid[i]
            groups.append(_resolve_groups(group, qid, X_eval.shape[0], f"eval_group[{i}]", f"eval_qid[{i}]"))
        return groups

    def predict(self, X):
        """Ranking scores, one per row."""
        return self._raw_predict(X)

    def score(self, X, y, group=None, qid=None, k=10, no_relevant="one"):
        """Mean NDCG@k of the predicted scores over the query groups (see ``selboost.metrics.ndcg``)."""
        scores = self.predict(X)
        sizes = _resolve_groups(group, qid, scores.shape[0])
        return ndcg(y, scores, sizes, k=k, no_relevant=no_relevant)
