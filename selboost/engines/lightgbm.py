"""LightGBM: ``lightgbm.train`` with a selboost objective, its Dataset, models and Dask interface.

Weights are per row. A custom objective starts from 0 whatever ``boost_from_average`` says, so the
initial score goes into every Dataset as ``init_score`` and is added back at prediction.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse

from selboost._validation import as_float_array, raise_nonfinite
from selboost.engines import BoostingParams, Engine, TrainResult, constant_margin, eval_names, train_result
from selboost.metrics import EngineMetric
from selboost.objectives import LightGBMObjective, LightGBMSklearnObjective

# Dataset parameters that must also reach the validation Datasets
_DATASET_PARAMS = ("verbose", "feature_pre_filter", "max_bin", "min_data_in_bin", "min_data_in_leaf")


class LightGBMMetric(EngineMetric):
    """``feval=`` for ``lightgbm.train``: ``f(preds, dataset) -> (name, value, higher_is_better)``."""

    def __call__(self, preds, dataset):
        return self.metric.name, self.value(preds, dataset), self.metric.higher_is_better


class _EarlyStopping:
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


def _public_field(data, attribute, getter):
    """A Dataset field from its public attribute (set before and after construction), else from the
    constructed Dataset (``get_*`` raises before construction: then there is none)."""
    value = getattr(data, attribute)
    if value is None:
        try:
            value = getter()
        except Exception:  # LightGBMError: not constructed yet, so the field was never given
            value = None
    return None if value is None else np.asarray(value)


def _constructed(dataset):
    try:
        dataset.num_data()
    except Exception:  # LightGBMError: "Cannot get num_data before construct dataset"
        return False
    return True


#: LightGBM stores labels as float32 through ``Common::AvoidInf``: NaN becomes 0 and +-inf (or any value
#: beyond float32's range) becomes exactly +-1e38f.
_LABEL_CLAMP = np.float32(1e38)

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
    if not _constructed(dataset):
        if dataset.params is None:
            dataset.params = {}
        dataset.params.setdefault("feature_pre_filter", False)
    elif not any(dataset.feature_num_bin(i) for i in range(dataset.num_feature())):
        raise ValueError(_NO_FEATURE_LEFT)


class LightGBMEngine(Engine):
    name = "lightgbm"
    short_name = "lgb"
    package = "lightgbm"
    param_names = {"learning_rate": "learning_rate", "max_depth": "max_depth", "num_leaves": "num_leaves",
                   "min_child_weight": "min_sum_hessian_in_leaf", "reg_lambda": "lambda_l2", "seed": "seed",
                   "threads": "num_threads", "min_child_samples": "min_data_in_leaf"}
    tree_size_param = "num_leaves"  # leaf-wise growth
    ranking_objectives = {"lambdarank": "lambdamart", "rank_xendcg": "xendcg"}
    default_leaf_hessian_minimum = 1e-3
    data_types = "lightgbm.Dataset"
    devices = ("cpu", "cuda", "gpu")

    # -- data --------------------------------------------------------------------------------
    def read_data(self, data):
        label = data.get_label()
        if label is None:
            raise ValueError("the lightgbm.Dataset has no label")
        self.check_labels(data)
        group = _public_field(data, "group", data.get_group)
        weight = _public_field(data, "weight", data.get_weight)
        return np.asarray(label), group, weight, None

    def n_rows(self, data):
        try:
            return data.num_data()
        except Exception:  # not constructed yet: the label has one entry per row
            return len(data.get_label())

    def set_margin(self, data, margin):
        _keep_unsplittable_features(data)
        data.set_init_score(margin)

    def check_labels(self, data):
        """Before construction ``data.label`` is the user's own array. Construction replaces it by
        LightGBM's copy, where a NaN is a 0 that cannot be told from a real one (the case no check can
        catch), while an infinite label is an exact +-1e38: refused here as the infinite label it was."""
        if not _constructed(data):
            if data.label is not None:
                as_float_array(data.label, "y_true", ndim=(1, 2), allow_empty=True)
            return
        label = np.asarray(data.get_label())
        clamped = np.abs(label) >= _LABEL_CLAMP
        if clamped.any():
            raise_nonfinite(np.where(clamped, np.inf, label), "y_true")

    def n_classes_of(self, data):
        return data.params.get("num_class") if data.params else None

    def input(self, X):
        # LightGBM takes scipy's sparse matrices but would copy-convert the newer sparse arrays
        if sparse.issparse(X) and not isinstance(X, sparse.spmatrix):
            return sparse.csr_matrix(X)
        return X

    # -- objectives and metrics ---------------------------------------------------------------
    def objective(self, loss, **options):
        options.pop("device", None)  # LightGBM takes custom gradients from the host only
        return LightGBMObjective(loss, **options)

    def metric(self, metric):
        return LightGBMMetric(metric)

    # -- parameters ----------------------------------------------------------------------------
    def params(self, common: BoostingParams):
        params = {"learning_rate": common.learning_rate, "verbose": -1, "metric": "None"}
        if common.device != "cpu":
            params["device_type"] = common.device
        if common.subsample != 1.0:
            params.update(bagging_fraction=common.subsample, bagging_freq=1)
        if common.colsample_bytree != 1.0:
            params["feature_fraction"] = common.colsample_bytree
        if common.n_outputs > 1:
            params["num_class"] = common.n_outputs
        params.update(self._optional_params(common))
        # keep features LightGBM would pre-filter as unsplittable: with a custom objective and no
        # feature left, LightGBM 4 aborts instead of growing constant trees (small data)
        params["feature_pre_filter"] = False
        return params

    def _probe_gpu(self, device):
        lgb = self.require()
        rng = np.random.default_rng(0)
        data = lgb.Dataset(rng.normal(size=(64, 2)), label=rng.normal(size=64), params={"verbose": -1})
        try:
            lgb.train({"device_type": device, "verbose": -1, "num_leaves": 2}, data, 1)
        except Exception as error:  # LightGBMError: no such device support in this build, or no device
            return f"LightGBM cannot train with device_type={device!r}: {str(error).splitlines()[0]}"
        return None

    # -- training and models -------------------------------------------------------------------
    def train(self, params, X, bound, init, *, label=None, weight=None, evals=(), metric=None,
              num_boost_round=100, early_stopping_rounds=None, callbacks=None, verbose=False):
        lgb = self.require()
        params = dict(params, objective=LightGBMObjective(bound.spec))
        dataset_params = {key: params[key] for key in _DATASET_PARAMS if key in params}
        dtrain = lgb.Dataset(X, label=label if np.ndim(label) == 1 else None, init_score=constant_margin(init, X.shape[0]),
                             weight=weight, params=dataset_params, free_raw_data=True)
        params["objective"].register(dtrain, bound)
        names = eval_names(len(evals))
        feval = self.metric(metric) if evals else None
        valid = []
        for X_eval, prepared in evals:
            deval = lgb.Dataset(X_eval, init_score=constant_margin(init, X_eval.shape[0]), reference=dtrain,
                                params=dataset_params)
            feval.register(deval, prepared)
            valid.append(deval)
        results = {}
        callbacks = list(callbacks or [])
        if valid:
            callbacks.append(lgb.record_evaluation(results))
            if verbose:
                callbacks.append(lgb.log_evaluation(1 if verbose is True else int(verbose)))
        stopper = None
        if early_stopping_rounds is not None:
            stopper = _EarlyStopping(early_stopping_rounds, names[-1], metric.higher_is_better)
            callbacks.append(stopper)
        booster = lgb.train(params, dtrain, num_boost_round, valid_sets=valid or None, valid_names=names or None,
                            feval=feval, callbacks=callbacks)
        return train_result(booster, results, metric, stopper.best_iteration if stopper else None)

    def train_ranking(self, params, train, valid, *, num_boost_round, early_stopping_rounds, ndcg_at=10,
                      threads=1, seed=0):
        lgb = self.require()
        params = {"metric": "ndcg", "eval_at": [ndcg_at], "num_threads": threads, "seed": seed, "verbose": -1,
                  "deterministic": True, "force_row_wise": True, **params}
        (X, y, group), (X_valid, y_valid, group_valid) = train, valid
        dtrain = lgb.Dataset(X, label=y, group=group, params={"verbose": -1})
        dvalid = lgb.Dataset(X_valid, label=y_valid, group=group_valid, reference=dtrain, params={"verbose": -1})
        if callable(params["objective"]):
            for data in (dtrain, dvalid):
                _keep_unsplittable_features(data)
        stopping = lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
        booster = lgb.train(params, dtrain, num_boost_round=num_boost_round, valid_sets=[dvalid], callbacks=[stopping])
        # LightGBM counts the best round from 1, and from 0 when it never evaluated one
        rounds = booster.current_iteration()
        best = booster.best_iteration if booster.best_iteration > 0 else rounds
        return TrainResult(booster, best - 1)

    def predict_raw(self, booster, X, init, iteration_range=None):
        begin, end = (0, -1) if iteration_range is None else iteration_range
        raw = booster.predict(self.input(X), raw_score=True, start_iteration=begin,
                              num_iteration=end - begin if end >= 0 else -1)
        return raw + np.asarray(init, dtype=np.float64)

    def num_rounds(self, booster):
        return booster.current_iteration()

    def save(self, booster):
        return booster.model_to_string()

    def load(self, text):
        return self.require().Booster(model_str=text)

    def feature_importances(self, booster, n_features):
        return np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)

    # -- Dask -------------------------------------------------------------------------------------
    def dask_train(self, client, params, X, y, loss, init, *, margin=None, weight=None, qid=None,
                   group_sizes=None, num_boost_round=100, n_threads=1, callbacks=None):
        import dask.array as da
        import lightgbm.dask

        params = dict(params, n_estimators=int(num_boost_round))
        params.pop("num_threads", None)  # lightgbm.dask uses each worker's threads
        objective = LightGBMSklearnObjective(loss, n_threads=n_threads)
        fit_args = {"sample_weight": weight, "init_score": margin, "callbacks": callbacks}
        if group_sizes is not None:
            model = lightgbm.dask.DaskLGBMRanker(client=client, objective=objective, **params)
            fit_args["group"] = da.from_array(np.concatenate(group_sizes),
                                              chunks=(tuple(g.size for g in group_sizes),))
        else:
            model = lightgbm.dask.DaskLGBMRegressor(client=client, objective=objective, **params)
        with warnings.catch_warnings():
            # lightgbm.dask warns about its own default n_jobs, which it replaces by the worker's threads
            warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
            model.fit(X, y, **fit_args)
        return model

    def dask_predict_raw(self, client, model, X, init, iteration_range=None):
        begin, end = (0, -1) if iteration_range is None else iteration_range
        raw = model.predict(X, raw_score=True, start_iteration=begin, num_iteration=end - begin if end >= 0 else -1)
        init = np.asarray(init, dtype=np.float64)
        return raw + init if np.any(init != 0) else raw

    def dask_booster(self, model):
        return model.booster_


ENGINE = LightGBMEngine()
