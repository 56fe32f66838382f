"""XGBoost: ``xgboost.train`` with a selboost objective, its DMatrix, models and Dask interface.

With groups a DMatrix's weights are per group; without, per row. The initial score goes into the model
as ``base_score`` (XGBoost uses it as the starting margin of a custom objective as it is and saves it),
so prediction adds nothing. On ``device="cuda"`` the engine trains with ``selboost.xgboost_train``
(``selboost.engines._xgboost_train``), which keeps the margins on the GPU; on the CPU with
``xgboost.train(obj=...)``, which was measured faster there and gives the same model.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np

from selboost._validation import FLOAT32_MAX
from selboost.engines import BoostingParams, Engine, PartMetric, TrainResult, constant_margin, eval_names, train_result
from selboost.engines._adapters import EngineMetric, EngineObjective
from selboost.engines._xgboost_train import xgboost_train


class XGBoostObjective(EngineObjective):
    """``obj=`` for ``xgboost.train``: ``f(preds, dtrain) -> (grad, hess)``, float32 arrays.

    ``preds`` are XGBoost's raw margins ((n, k) with ``num_class=k``). Groups come from the DMatrix's
    ``group_ptr``; with groups XGBoost's weights are per group (passed as ``group_weight``), without
    them per row. ``hess_scale`` multiplies every hessian: ``hess_scale=2`` reproduces
    ``multi:softprob``, whose hessian is ``2 p (1 - p)``, with an identity-transform
    ``MulticlassLoss``. ``n_threads``: the threads the gradient kernels run on, 1 by default because
    the engine's own threads already occupy every core during a round (``benchmarks/RESULTS.md``).
    """

    # XGBoost's split gain squares a node's gradient sum in float32: past sqrt(float32 max) the gain is
    # infinite and the split it picks is arbitrary (measured: the splits change exactly there)
    gradient_sum_limit = FLOAT32_MAX ** 0.5
    engine_label = "XGBoost"


class XGBoostMetric(EngineMetric):
    """``custom_metric=`` for ``xgboost.train``: ``f(preds, dmatrix) -> (name, value)``."""

    def __call__(self, preds, dmatrix):
        return self.metric.name, self.value(preds, dmatrix)


class XGBoostDaskMetric(PartMetric):
    """``custom_metric=`` for ``xgboost.dask.train``. XGBoost calls a custom metric on each worker with
    that worker's local evaluation DMatrix and records what it returns there, without reducing it (only
    its built-in metrics are reduced). So each worker computes its part's sums and sums them over the
    workers with XGBoost's own allreduce, in the communicator its training runs in: every worker
    returns the metric of the whole evaluation set, and early stopping decides alike on all of them."""

    def __call__(self, preds, dmatrix):
        from xgboost import collective

        total = collective.allreduce(self.sums(preds, dmatrix), collective.Op.SUM)
        return self.metric.name, self.value(total)


class XGBoostEngine(Engine):
    name = "xgboost"
    short_name = "xgb"
    package = "xgboost"
    param_names = {"learning_rate": "eta", "max_depth": "max_depth", "num_leaves": "max_leaves",
                   "min_child_weight": "min_child_weight", "reg_lambda": "lambda", "seed": "seed",
                   "threads": "nthread"}
    tree_size_param = "max_depth"  # depth-wise growth
    ranking_objectives = {"rank:ndcg": "lambdamart"}
    default_leaf_hessian_minimum = 1.0
    data_types = "xgboost.DMatrix"
    metric_class = XGBoostMetric
    devices = ("cpu", "cuda")
    score_dtype = np.float32  # the predictions XGBoost passes a custom objective
    dask_weights_with_groups = False  # DaskDMatrix: "per-group weight is not implemented" with qid

    def check_device(self, device):
        if device == "gpu":
            raise ValueError("device='gpu' is LightGBM's OpenCL build; use device='cuda' with engine='xgboost'")
        super().check_device(device)

    # -- data --------------------------------------------------------------------------------
    def read_data(self, data):
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

    def n_rows(self, data):
        return data.num_row()

    def set_margin(self, data, margin):
        data.set_base_margin(margin)

    # -- objectives and metrics ---------------------------------------------------------------
    def objective(self, loss, **options):
        return XGBoostObjective(loss, **options)

    # -- parameters ----------------------------------------------------------------------------
    def params(self, common: BoostingParams):
        params = {"eta": common.learning_rate, "tree_method": "hist", "device": common.device,
                  "verbosity": 0, "disable_default_eval_metric": 1}
        if common.subsample != 1.0:
            params["subsample"] = common.subsample
        if common.colsample_bytree != 1.0:
            params["colsample_bytree"] = common.colsample_bytree
        if common.n_outputs > 1:
            params["num_class"] = common.n_outputs
        params.update(self._optional_params(common))
        return params

    def unknown_params(self, params):
        # XGBoost's own check (validate_parameters) names what a booster of these parameters would not
        # use; its warning passes through Python's warnings from verbosity 1 on
        import xgboost

        probe = {key: value for key, value in params.items() if not callable(value)}
        probe.update(validate_parameters=True, verbosity=1, nthread=1)
        probe.pop("device", None)  # no GPU is needed to check the names
        data = xgboost.DMatrix(np.zeros((2, 1)), label=np.zeros(2))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            xgboost.Booster(probe, [data]).save_config()
        names = set()
        for warning in caught:
            match = re.search(r"Parameters: \{(.*?)\} are not used", str(warning.message), re.S)
            if match:
                names.update(name.strip().strip('"') for name in match.group(1).split(","))
        return sorted(names & set(params))

    def _in_model(self, init):
        """Whether the initial score ``init`` goes into the model as ``base_score`` (saved with it, nothing
        to add at prediction). A (k,) vector needs an XGBoost that takes a vector ``base_score``; with an
        older one it goes into every DMatrix as a base margin and ``predict_raw`` adds it back."""
        if np.ndim(init) == 0:
            return True
        if self._vector_base_score is None:
            xgb = self.require()
            data = xgb.DMatrix(np.zeros((4, 1)), label=np.array([0.0, 1.0, 0.0, 1.0]))
            try:
                xgb.train({"base_score": [0.5, 0.5], "num_class": 2, "objective": "multi:softprob",
                           "verbosity": 0}, data, 1)
                self._vector_base_score = True
            except xgb.core.XGBoostError:
                self._vector_base_score = False
        return self._vector_base_score

    _vector_base_score = None

    def _base_score(self, init):
        return (init.tolist() if init.ndim else float(init)) if self._in_model(init) else 0.0

    def _probe_gpu(self, device):
        xgb = self.require()
        if not xgb.build_info().get("USE_CUDA", False):
            return "this XGBoost build has no CUDA support"
        data = xgb.DMatrix(np.arange(8, dtype=np.float32).reshape(4, 2), label=np.arange(4, dtype=np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = xgb.train({"device": "cuda", "verbosity": 0}, data, 1)
        found = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
        if not found.startswith("cuda"):
            return "XGBoost found no visible GPU (it would fall back to the CPU)"
        return None

    # -- training and models -------------------------------------------------------------------
    def train(self, params, X, bound, init, *, label=None, weight=None, evals=(), metric=None,
              num_boost_round=100, early_stopping_rounds=None, callbacks=None, verbose=False):
        xgb = self.require()
        init = np.asarray(init, dtype=np.float64)
        params = dict(params, base_score=self._base_score(init))
        # the data objects are built with the training's threads (a DMatrix otherwise takes every core)
        threads = {} if params.get("nthread") is None else {"nthread": int(params["nthread"])}
        dtrain = self._dmatrix(X, init, label=label if np.ndim(label) == 1 else None, weight=weight, **threads)
        names = eval_names(len(evals))
        custom_metric = self.metric(metric) if evals else None
        watch = []
        for (X_eval, prepared), name in zip(evals, names):
            deval = self._dmatrix(X_eval, init, **threads)
            custom_metric.register(deval, prepared)
            watch.append((deval, name))
        callbacks = list(callbacks or [])
        if early_stopping_rounds is not None:
            callbacks.append(xgb.callback.EarlyStopping(
                rounds=early_stopping_rounds, metric_name=metric.name, data_name=names[-1],
                maximize=metric.higher_is_better, save_best=False))
        results = {}
        if params.get("device", "cpu").startswith("cuda"):
            # margins on the device: no host round trip of the margins per round (RESULTS.md §5)
            booster = xgboost_train(params, dtrain, num_boost_round, loss=bound, X=X, evals=watch,
                            custom_metric=custom_metric, evals_result=results, verbose_eval=verbose,
                            callbacks=callbacks)
        else:
            objective = XGBoostObjective(bound.spec)
            objective.register(dtrain, bound)
            booster = xgb.train(params, dtrain, num_boost_round, evals=watch, obj=objective,
                                custom_metric=custom_metric, evals_result=results, verbose_eval=verbose,
                                callbacks=callbacks)
        best = booster.best_iteration if early_stopping_rounds is not None else None
        return train_result(booster, results, metric, best)

    def train_ranking(self, params, train, valid, *, num_boost_round, early_stopping_rounds, ndcg_at=10,
                      threads=1, seed=0):
        xgb = self.require()
        params = {"tree_method": "hist", "eval_metric": f"ndcg@{ndcg_at}", "nthread": threads, "seed": seed,
                  "max_depth": 6, **params}
        objective = params.pop("objective")
        if callable(objective):
            params["base_score"] = 0.0  # a custom objective starts from 0, as predict_raw's init says
        else:
            params["objective"] = objective
        (X, y, group), (X_valid, y_valid, group_valid) = train, valid
        dtrain = xgb.DMatrix(X, label=y, group=group, nthread=threads)
        dvalid = xgb.DMatrix(X_valid, label=y_valid, group=group_valid, nthread=threads)
        booster = xgb.train(params, dtrain, num_boost_round=num_boost_round, evals=[(dvalid, "valid")],
                            obj=objective if callable(objective) else None,
                            early_stopping_rounds=early_stopping_rounds, verbose_eval=False)
        return TrainResult(booster, booster.best_iteration)

    def _dmatrix(self, X, init, **fields):
        data = self.require().DMatrix(X, **fields)
        if not self._in_model(init):
            data.set_base_margin(constant_margin(init, X.shape[0]))
        return data

    def predict_raw(self, booster, X, init, iteration_range=None):
        kwargs = {} if iteration_range is None else {"iteration_range": tuple(iteration_range)}
        return booster.predict(self._dmatrix(X, init), output_margin=True, **kwargs)

    def num_rounds(self, booster):
        return booster.num_boosted_rounds()

    def save(self, booster):
        return bytes(booster.save_raw("json")).decode("utf-8")

    def load(self, text):
        return self.require().Booster(model_file=bytearray(text.encode("utf-8")))

    def feature_importances(self, booster, n_features):
        scores = booster.get_score(importance_type="total_gain")
        out = np.zeros(n_features)
        for key, value in scores.items():
            out[int(key[1:]) if key.startswith("f") and key[1:].isdigit() else booster.feature_names.index(key)] = value
        return out

    # -- Dask -------------------------------------------------------------------------------------
    def dask_train(self, client, params, X, y, loss, init, *, margin=None, weight=None, qid=None,
                   group_sizes=None, num_boost_round=100, n_threads=1, callbacks=None, evals=(), metric=None,
                   early_stopping_rounds=None, verbose=False):
        import xgboost.dask

        init = np.asarray(init, dtype=np.float64)
        params = dict(params, base_score=self._base_score(init))
        params.pop("nthread", None)  # xgboost.dask uses each worker's threads
        in_model = self._in_model(init)
        dtrain = xgboost.dask.DaskDMatrix(client, X, y, weight=weight, qid=qid,
                                          base_margin=None if in_model else margin)
        names = eval_names(len(evals))
        watch = [(xgboost.dask.DaskDMatrix(client, e.X, e.y, weight=e.weight, qid=e.qid,
                                           base_margin=None if in_model else e.margin), name)
                 for e, name in zip(evals, names)]
        callbacks = list(callbacks or [])
        if early_stopping_rounds is not None:
            callbacks.append(xgboost.callback.EarlyStopping(
                rounds=early_stopping_rounds, metric_name=metric.name, data_name=names[-1],
                maximize=metric.higher_is_better, save_best=False))
        output = xgboost.dask.train(client, params, dtrain, num_boost_round=num_boost_round, evals=watch or None,
                                    obj=XGBoostObjective(loss, n_threads=n_threads),
                                    custom_metric=XGBoostDaskMetric(metric) if evals else None,
                                    callbacks=callbacks, verbose_eval=verbose)
        booster = output["booster"]
        best = booster.best_iteration if early_stopping_rounds is not None else None
        return train_result(booster, output["history"], metric, best)

    def dask_predict_raw(self, client, model, X, init, iteration_range=None):
        import xgboost.dask

        kwargs = {} if iteration_range is None else {"iteration_range": tuple(iteration_range)}
        raw = xgboost.dask.predict(client, model, X, output_margin=True, **kwargs)
        return raw if self._in_model(init) else raw + np.asarray(init, dtype=np.float64)

    def dask_booster(self, model):
        return model


ENGINE = XGBoostEngine()
