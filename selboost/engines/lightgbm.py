"""LightGBM: ``lightgbm.train`` with a selboost objective, its Dataset, models and Dask interface.

Weights are per row. A custom objective starts from 0 whatever ``boost_from_average`` says, so the
initial score goes into every Dataset as ``init_score`` and is added back at prediction.
"""

from __future__ import annotations

import inspect
import threading
import warnings
import weakref

import numpy as np
from scipy import sparse

from selboost._validation import as_float_array, check_storable
from selboost.engines import BoostingParams, Engine, PartMetric, TrainResult, constant_margin, eval_names, train_result
from selboost.engines._adapters import Binding, EngineMetric, EngineObjective

# Dataset parameters that must also reach the validation Datasets
_DATASET_PARAMS = ("verbose", "feature_pre_filter", "max_bin", "min_data_in_bin", "min_data_in_leaf")


class LightGBMObjective(EngineObjective):
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
        binding = Binding(bound, "cpu")
        # a weak reference: the cache must not keep a finished training set's labels alive
        ref = weakref.ref(y_true, lambda _, key=key: self._forget(key))
        with self._lock:
            self._bindings[key] = (ref, binding)
        return binding

    def __call__(self, y_true, y_pred, weight, group):
        binding = self._binding(y_true, y_pred, weight, group)
        if np.shape(y_pred) != binding.bound.shape:
            raise ValueError(
                f"LightGBM passed raw scores of shape {np.shape(y_pred)}, the loss is bound to "
                f"{binding.bound.shape}: for MulticlassLoss set num_class, for the other losses do not"
            )
        return self._adapter.gradient_step(binding, y_pred)


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


class _DaskEvaluation:
    """Evaluation and early stopping of ``lightgbm.dask`` training, on the workers.

    ``lightgbm.dask`` hands each worker the evaluation partitions it holds, and LightGBM evaluates a
    custom metric on each worker's local rows only, without reducing it; its early stopping would then
    stop each worker on its own values, at different rounds, and the workers' allreduce would hang.
    LightGBM offers no allreduce to Python, and training in chunks of rounds with ``init_model``
    would replace the initial score by the chunk's predictions and set up the network every chunk. So
    this callback runs on every worker after every round: it takes the round's raw scores of the
    worker's local evaluation Datasets (LightGBM keeps them up to date, one tree per round), computes
    the metric's additive sums there (``PartMetric``), and sums them over the workers through Dask
    ``Variable``s (one small vector per worker and round, added in rank order, so that every worker
    gets the same total). Every worker then records the same value and stops at the same round, and
    the cost per round is one tree's predictions plus a few messages: linear in rounds. Rank 0 leaves
    the history for the client in a ``Variable``; ``collect`` reads it and removes what is left.
    """

    order = 15  # before LightGBM's record_evaluation (20) and early stopping (30)

    def __init__(self, metric, names, early_stopping_rounds=None, verbose=False, timeout=600):
        import uuid

        self.part = PartMetric(metric)
        self.names = list(names)
        self.stopper = (None if early_stopping_rounds is None
                        else _EarlyStopping(early_stopping_rounds, self.names[-1], metric.higher_is_better))
        self.verbose = verbose
        self.timeout = timeout
        self.token = f"selboost-eval-{uuid.uuid4().hex}"
        self.history = {name: [] for name in self.names}

    def _rank(self, params):
        from urllib.parse import urlparse

        from distributed import get_worker

        machines = str(params.get("machines") or "").split(",")
        if len(machines) <= 1:
            return 0, 1
        host = urlparse(get_worker().address).hostname
        return machines.index(f"{host}:{int(params['local_listen_port'])}"), len(machines)

    def _local_sums(self, booster):
        local = {}
        if booster.valid_sets:
            sums = []
            booster.eval_valid(lambda preds, data: (sums.append(self.part.sums(preds, data)) or ("sums", 0.0, False)))
            local = dict(zip(booster.name_valid_sets, sums))
        return [list(local[name]) if name in local else None for name in self.names]

    def _allreduce(self, local, iteration, rank, size):
        """The workers' sums added up; ``local`` is this worker's sums, or the exception that stopped it
        from computing them, which every worker then raises (a worker that left the exchange alone
        would keep the others waiting, and with them the Dask worker threads later trainings need)."""
        from distributed import Variable, get_client

        failed = isinstance(local, BaseException)
        if size > 1:
            client = get_client()
            Variable(f"{self.token}-{iteration}-{rank}", client=client).set(
                {"error": f"{type(local).__name__}: {local}"} if failed else local)
        if failed:
            raise local
        if size == 1:
            return local
        parts = [Variable(f"{self.token}-{iteration}-{j}", client=client).get(timeout=self.timeout)
                 for j in range(size)]
        for j, part in enumerate(parts):
            if isinstance(part, dict):
                raise RuntimeError(f"evaluation failed on the worker of rank {j} at round {iteration}: "
                                   f"{part['error']}")
        if iteration > 0:
            # every worker has read the previous round's values before it wrote this round's
            Variable(f"{self.token}-{iteration - 1}-{rank}", client=client).delete()
        totals = []
        for i in range(len(self.names)):
            given = [np.asarray(p[i], dtype=np.float64) for p in parts if p[i] is not None]
            totals.append(np.sum(given, axis=0) if given else None)
        return totals

    def __call__(self, env):
        import lightgbm as lgb

        # LightGBM 4.7 records named tuples; earlier versions plain ones
        result = getattr(lgb, "EvalResult", lambda *fields: fields)
        rank, size = self._rank(env.params)
        try:
            local = self._local_sums(env.model)
        except Exception as error:  # handed to the other workers, then raised here
            local = error
        totals = self._allreduce(local, env.iteration, rank, size)
        metric = self.part.metric
        for name, total in zip(self.names, totals):
            value = self.part.value(total) if total is not None else float("nan")
            self.history[name].append(value)
            env.evaluation_result_list.append(result(name, metric.name, value, metric.higher_is_better))
        if self.verbose and rank == 0 and env.iteration % (1 if self.verbose is True else int(self.verbose)) == 0:
            print(f"[{env.iteration}]\t" + "\t".join(f"{n}'s {metric.name}: {h[-1]:g}" for n, h in self.history.items()))
        last = env.iteration == env.end_iteration - 1
        try:
            if self.stopper is not None:
                self.stopper(env)
        except Exception:
            if rank == 0:
                self._publish(env.iteration, size)
            raise
        if last and rank == 0:
            self._publish(env.iteration, size)

    def _publish(self, iteration, size):
        from distributed import Variable, get_client

        best = None if self.stopper is None else self.stopper.best_iteration
        Variable(f"{self.token}-result", client=get_client()).set(
            {"history": self.history, "best_iteration": best, "last": iteration, "size": size})

    def collect(self, client):
        """The history and best round rank 0 left (after training); removes the exchange's Variables."""
        from distributed import Variable

        result = Variable(f"{self.token}-result", client=client)
        found = result.get(timeout=self.timeout)
        result.delete()
        for j in range(found["size"]):
            Variable(f"{self.token}-{found['last']}-{j}", client=client).delete()
        return found


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
    metric_class = LightGBMMetric
    devices = ("cpu", "cuda", "gpu")

    # -- data --------------------------------------------------------------------------------
    def read_data(self, data):
        label = data.get_label()
        if label is None:
            raise ValueError("the lightgbm.Dataset has no label")
        self.check_labels(data)
        group = _public_field(data, "group", data.get_group)
        return np.asarray(label), group, self._checked_weights(data, len(label)), None

    def _checked_weights(self, data, n_rows):
        """The Dataset's per-row weights, or None. Before construction ``data.weight`` is the user's own
        array, checked as given; construction stores a float32 copy, where an infinite weight is an exact
        +-1e38 (refused as the infinite weight it was) and a NaN a 0 that no check can tell."""
        if not _constructed(data):
            if data.weight is None:
                return None
            weight = as_float_array(data.weight, "weight", check_finite=False)
            check_storable(weight, "weight")
            if weight.size != n_rows:
                raise ValueError(
                    f"the lightgbm.Dataset has {weight.size} weights for {n_rows} rows: LightGBM's weights are "
                    "per row. For one weight per query group, repeat it over the group's rows")
            return weight
        weight = data.get_weight()
        if weight is None:
            return None
        weight = np.asarray(weight)
        clamped = np.abs(weight) >= _LABEL_CLAMP
        if clamped.any():
            check_storable(np.where(clamped, np.inf, weight), "weight")
        return weight

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
                check_storable(as_float_array(data.label, "y_true", ndim=(1, 2), allow_empty=True,
                                              check_finite=False), "y_true")
            return
        label = np.asarray(data.get_label())
        clamped = np.abs(label) >= _LABEL_CLAMP
        if clamped.any():
            check_storable(np.where(clamped, np.inf, label), "y_true")

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

    def unknown_params(self, params):
        from lightgbm.basic import _ConfigAliases

        known = set()
        for name, aliases in _ConfigAliases._get_all_param_aliases().items():
            known.add(name)
            known.update(aliases)
        return sorted(set(params) - known)

    def dask_objective(self, loss, **options):
        # lightgbm.dask trains through LightGBM's scikit-learn estimators, which call an objective as
        # f(y_true, y_pred, weight, group)
        return LightGBMSklearnObjective(loss, **options)

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
                   group_sizes=None, num_boost_round=100, n_threads=1, callbacks=None, evals=(), metric=None,
                   early_stopping_rounds=None, verbose=False):
        import dask.array as da
        import lightgbm.dask

        params = dict(params, n_estimators=int(num_boost_round))
        params.pop("num_threads", None)  # lightgbm.dask uses each worker's threads
        objective = LightGBMSklearnObjective(loss, n_threads=n_threads)
        callbacks = list(callbacks or [])
        fit_args = {"sample_weight": weight, "init_score": margin}
        if group_sizes is not None:
            model = lightgbm.dask.DaskLGBMRanker(client=client, objective=objective, **params)
            fit_args["group"] = _dask_group(group_sizes)
        else:
            model = lightgbm.dask.DaskLGBMRegressor(client=client, objective=objective, **params)
        evaluation = None
        if evals:
            names = eval_names(len(evals))
            evaluation = _DaskEvaluation(metric, names, early_stopping_rounds, verbose)
            callbacks.append(evaluation)
            if "eval_X" in inspect.signature(type(model).fit).parameters:  # LightGBM 4.7 deprecates eval_set
                fit_args.update(eval_X=tuple(e.X for e in evals), eval_y=tuple(e.y for e in evals))
            else:
                fit_args["eval_set"] = [(e.X, e.y) for e in evals]
            fit_args["eval_names"] = names
            if any(e.weight is not None for e in evals):  # lightgbm.dask takes all eval weights or none
                fit_args["eval_sample_weight"] = [da.ones(e.y.shape[0], chunks=e.y.chunks[0]) if e.weight is None
                                                  else e.weight for e in evals]
            if any(e.margin is not None for e in evals):
                fit_args["eval_init_score"] = [e.margin for e in evals]
            if group_sizes is not None:
                fit_args["eval_group"] = [_dask_group(e.group_sizes) for e in evals]
        with warnings.catch_warnings():
            # lightgbm.dask warns about its own default n_jobs, which it replaces by the worker's threads
            warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
            model.fit(X, y, callbacks=callbacks, **fit_args)
        if evaluation is None:
            return train_result(model, {}, metric)
        found = evaluation.collect(client)
        results = {name: {metric.name: values} for name, values in found["history"].items()}
        return train_result(model, results, metric, found["best_iteration"])

    def dask_predict_raw(self, client, model, X, init, iteration_range=None):
        begin, end = (0, -1) if iteration_range is None else iteration_range
        raw = model.predict(X, raw_score=True, start_iteration=begin, num_iteration=end - begin if end >= 0 else -1)
        init = np.asarray(init, dtype=np.float64)
        return raw + init if np.any(init != 0) else raw

    def dask_booster(self, model):
        return model.booster_


def _dask_group(group_sizes):
    """Per-partition group sizes as ``lightgbm.dask`` takes them: chunk i holds partition i's sizes."""
    import dask.array as da

    return da.from_array(np.concatenate(group_sizes), chunks=(tuple(g.size for g in group_sizes),))


ENGINE = LightGBMEngine()
