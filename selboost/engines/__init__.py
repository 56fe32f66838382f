"""The engines: one object per boosting library, owning everything that differs between them.

An ``Engine`` reads labels, groups and weights from its data object, sets the initial margin, maps the
common boosting parameters to its own names, trains with evaluation sets, early stopping and callbacks,
predicts raw scores, saves and loads its models, probes its GPU support, and does the same through its
Dask interface. The objectives, metrics, estimators, Dask estimators and the benchmark ask the engine
object; none of them compares engine names.

``get_engine("xgboost")`` (a name) or ``get_engine(dtrain)`` (an engine's data object) returns the
engine. Adding an engine means adding one module that defines an ``Engine`` subclass and naming it in
``_MODULES``.
"""

from __future__ import annotations

import importlib
import numbers
import os
import weakref
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Engine", "BoostingParams", "TrainResult", "get_engine", "ENGINE_NAMES"]

# engine name -> (its module here, the top-level package of its data objects)
_MODULES = {
    "xgboost": "selboost.engines.xgboost",
    "lightgbm": "selboost.engines.lightgbm",
}
ENGINE_NAMES = tuple(_MODULES)
_LOADED: dict = {}


def get_engine(name_or_data):
    """The engine called ``name_or_data`` ("xgboost", "lightgbm"), or the one that owns a data object
    (``xgboost.DMatrix``, ``lightgbm.Dataset``); a ValueError / TypeError otherwise."""
    if isinstance(name_or_data, Engine):
        return name_or_data
    if isinstance(name_or_data, str) or name_or_data is None:
        if name_or_data not in _MODULES:
            raise ValueError(f"engine must be one of {list(_MODULES)}, got {name_or_data!r}")
        return _load(name_or_data)
    package = type(name_or_data).__module__.partition(".")[0]
    if package in _MODULES:
        return _load(package)
    raise TypeError(
        f"data must be an engine's data object ({', '.join(_load(n).data_types for n in _MODULES)}), "
        f"got {type(name_or_data).__name__}"
    )


def _load(name):
    engine = _LOADED.get(name)
    if engine is None:
        engine = _LOADED[name] = importlib.import_module(_MODULES[name]).ENGINE
    return engine


@dataclass
class BoostingParams:
    """The estimators' common parameters, already validated; each engine maps them to its own names.
    ``None`` keeps the engine's default."""

    learning_rate: float = 0.1
    max_depth: int | None = None
    num_leaves: int | None = None
    min_child_weight: float | None = None
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    reg_lambda: float | None = None
    seed: int | None = None
    threads: int | None = None
    device: str = "cpu"
    n_outputs: int = 1


@dataclass
class TrainResult:
    """What ``Engine.train`` returns: the booster, the best round (0-based, with early stopping), the
    metric's value at that round on the last evaluation set, and the history per evaluation set."""

    booster: object
    best_iteration: int | None = None
    best_score: float | None = None
    evals_result: dict = field(default_factory=dict)


@dataclass
class DaskEvalSet:
    """One evaluation set for ``Engine.dask_train``: Dask collections partitioned like ``X`` (``y``,
    per-row ``weight``, ``qid`` or per-partition ``group_sizes``, ``margin``: the initial score on
    every row, None when it is 0). Query groups must not span partitions."""

    X: object
    y: object
    weight: object = None
    qid: object = None
    group_sizes: object = None
    margin: object = None


class PartMetric:
    """A metric evaluated where the data is: each worker prepares its own part of an evaluation set
    once (labels, groups and weights read from the engine's data object) and returns the part's
    additive sums (``_Metric.part``); the engine adds them up over the workers and ``value`` turns the
    total into the metric. Pickles without its per-worker cache."""

    def __init__(self, metric):
        metric.check_parts()  # here, on the client: a worker that found it out alone would leave the others waiting
        self.metric = metric
        self._parts = weakref.WeakKeyDictionary()

    def __getstate__(self):
        return {"metric": self.metric}

    def __setstate__(self, state):
        self.__init__(state["metric"])

    def sums(self, preds, data):
        part = self._parts.get(data)
        if part is None:
            label, group, sample_weight, group_weight = get_engine(data).read_data(data)
            n_classes = preds.shape[1] if np.ndim(preds) == 2 else None
            part = self._parts[data] = self.metric.part(label, group, sample_weight, group_weight, n_classes)
        return part.sums(preds)

    def value(self, total):
        return self.metric.from_sums(total)


def eval_names(n):
    """The evaluation sets' names, as both engines' scikit-learn estimators call them."""
    return [f"validation_{i}" for i in range(n)]


def threads(n_jobs):
    """Threads for ``n_jobs``: None (the engine's default), a positive count, or a negative value read
    as joblib does (``n_cpus + 1 + n_jobs``: -1 is every core, -2 all but one)."""
    if n_jobs is None or n_jobs == -1:
        return None
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    return int(n_jobs)


def seed(random_state):
    """An engine seed from an int, a ``numpy.random.RandomState`` or None."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) % (2**31 - 1)
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(2**31 - 1))


def constant_margin(init, n_rows):
    """``init`` on every row: (n,) for a number, (n, k) for a (k,) vector."""
    init = np.asarray(init, dtype=np.float64)
    if init.ndim > 1:
        raise ValueError(f"init must be a number or a (k,) vector, got shape {init.shape}")
    return np.tile(init, (n_rows, 1)) if init.ndim == 1 else np.full(n_rows, float(init))


class Engine:
    """The interface every engine module implements (``selboost.engines.xgboost`` and ``.lightgbm``).

    Data: ``read_data``, ``n_rows``, ``set_margin``, ``n_classes_of``. Objectives and metrics:
    ``objective``, ``metric``. Parameters: ``params``, ``native_params``, ``leaf_hessian_minimum``;
    what the engine has built in: ``ranking_objectives``, ``tree_size_param``, ``score_dtype``. Training and models:
    ``train``, ``train_ranking``, ``predict_raw``, ``num_rounds``, ``save``, ``load``, ``feature_importances``. Devices:
    ``devices``, ``check_device``, ``gpu_problem``. Dask: ``dask_train``, ``dask_predict_raw``.
    """

    name: str = ""
    #: a short tag for tables and method names ("xgb", "lgb")
    short_name: str = ""
    package: str = ""
    data_types: str = ""
    #: the engine's own name for each common parameter it takes (``BoostingParams`` fields and
    #: scikit-learn's ``min_child_samples``)
    param_names: dict = {}
    #: the parameter that bounds a tree's size under the engine's default growth policy
    tree_size_param: str = ""
    #: the engine's built-in learning-to-rank objectives -> their family ("lambdamart", "xendcg")
    ranking_objectives: dict = {}
    #: the ``device=`` values this engine accepts
    devices: tuple = ("cpu",)
    #: the Dask interface takes per-row weights together with query groups
    dask_weights_with_groups: bool = True
    #: the dtype of the scores the engine passes a custom objective each round (the gradients go back
    #: as float32): a gradient computed outside the rounds with these dtypes runs the kernel the rounds
    #: compile, not a second one
    score_dtype = np.float64

    def __repr__(self):
        return f"<selboost engine {self.name!r}>"

    def __reduce__(self):
        return (get_engine, (self.name,))

    def require(self):
        """The engine's package, or an ImportError saying which extra to install."""
        try:
            return importlib.import_module(self.package)
        except ImportError as error:  # pragma: no cover - both engines are test dependencies
            raise ImportError(f"engine={self.name!r} needs the {self.package} package: {error}") from error

    # -- data objects ---------------------------------------------------------------------------
    def read_data(self, data):
        """(label, group sizes or None, per-row weights or None, per-group weights or None)."""
        raise NotImplementedError

    def n_rows(self, data):
        raise NotImplementedError

    def set_margin(self, data, margin):
        """Set the initial raw scores (n,) or (n, k) of ``data``."""
        raise NotImplementedError

    def n_classes_of(self, data):
        """The class count the data object knows of (None when it knows none)."""
        return None

    def check_labels(self, data):
        """Refuse NaN or infinite labels wherever the data object still shows them ("y_true must be
        finite: ..."); nothing to do for an engine that refuses them itself."""

    def input(self, X):
        """X as the engine takes it best (a validated 2-d array or sparse matrix)."""
        return X

    # -- objectives and metrics -----------------------------------------------------------------
    def objective(self, loss, **options):
        """The selboost objective for this engine's ``train`` (see ``selboost.objectives``)."""
        raise NotImplementedError

    def metric(self, metric):
        """A selboost metric (or a loss, as its mean) as this engine's custom-metric callable, an
        instance of ``metric_class``."""
        return self.metric_class(metric)

    def dask_objective(self, loss, **options):
        """The selboost objective for this engine's Dask training interface (it pickles to its loss and
        options; each worker binds its own partitions)."""
        return self.objective(loss, **options)

    # -- parameters -----------------------------------------------------------------------------
    def params(self, common: BoostingParams):
        """The engine's parameters for the common ones (``None`` values left to the engine)."""
        raise NotImplementedError

    def native_params(self, **common):
        """The parameters given by their common names (``native_params(reg_lambda=1.0)``) under the
        engine's own names; a ValueError for one the engine has no counterpart of."""
        missing = [key for key in common if key not in self.param_names]
        if missing:
            raise ValueError(f"engine={self.name!r} has no parameter for {missing}")
        return {self.param_names[key]: value for key, value in common.items()}

    def _optional_params(self, common: BoostingParams):
        """The optional common parameters that are set, under the engine's own names."""
        fields = ("max_depth", "num_leaves", "min_child_weight", "reg_lambda", "seed", "threads")
        return self.native_params(**{key: getattr(common, key) for key in fields if getattr(common, key) is not None})

    #: the engine's smallest hessian sum in a leaf when its parameters do not set one
    default_leaf_hessian_minimum: float = 0.0

    def unknown_params(self, params):
        """The names in ``params`` this engine would ignore (misspelled, or of another engine), sorted;
        the engine's own test of its parameters, not a list kept here."""
        raise NotImplementedError

    def leaf_hessian_minimum(self, params):
        """The smallest hessian sum a leaf may hold under ``params`` (engine default included)."""
        return float(params.get(self.param_names["min_child_weight"], self.default_leaf_hessian_minimum))

    def check_device(self, device):
        if device not in self.devices:
            raise ValueError(f"device={device!r} is not available with engine={self.name!r}: use one of "
                             f"{list(self.devices)}")

    def gpu_problem(self, device="cuda"):
        """None when this engine can train on ``device`` here, else the reason (a tiny trial, cached)."""
        key = (self.name, device)
        if key not in _GPU_STATUS:
            _GPU_STATUS[key] = self._probe_gpu(device)
        return _GPU_STATUS[key]

    def _probe_gpu(self, device):
        raise NotImplementedError

    # -- training and models --------------------------------------------------------------------
    def train(self, params, X, bound, init, *, label=None, weight=None, evals=(), metric=None,
              num_boost_round=100, early_stopping_rounds=None, callbacks=None, verbose=False):
        """Boost ``bound`` (a bound selboost loss) from the constant ``init`` on X; ``evals`` is a list of
        (X_eval, prepared metric) watched under ``validation_<i>``, the last one driving early stopping.
        ``label`` / ``weight`` go into the engine's data for its own use (sketches, sampling) only: the
        bound loss weights the gradients. Returns a ``TrainResult``."""
        raise NotImplementedError

    def train_ranking(self, params, train, valid, *, num_boost_round, early_stopping_rounds, ndcg_at=10,
                      threads=1, seed=0):
        """Train a ranker on query groups with early stopping on the engine's own NDCG of ``valid``.

        Parameters
        ----------
        params : dict
            The engine's own parameters (``native_params``) with ``"objective"``: the name of one of the
            engine's built-in objectives (``ranking_objectives``, or any other it has) or a custom
            objective for this engine (``objective(loss)``, or a callable of the same signature).
        train, valid : tuple
            ``(X, y, group)`` each: features, relevance labels and query group sizes.
        num_boost_round : int
            Most boosting rounds.
        early_stopping_rounds : int
            Stop after this many rounds without a better NDCG@``ndcg_at`` on ``valid`` (the engine's own
            metric), keeping the best round.
        ndcg_at : int, default 10
            The NDCG cut-off of the early-stopping metric.
        threads, seed : int
            The engine's threads and seed. The other settings that keep a fit reproducible are the
            engine's.

        Returns
        -------
        TrainResult
            The booster and its best round (``best_iteration``, 0-based); predict with ``predict_raw``
            and an initial score of 0 (a custom objective starts from 0).
        """
        raise NotImplementedError

    def predict_raw(self, booster, X, init, iteration_range=None):
        """Raw scores on X including the initial score; ``iteration_range`` (begin, end) of rounds."""
        raise NotImplementedError

    def num_rounds(self, booster):
        raise NotImplementedError

    def save(self, booster):
        """The engine's own model text."""
        raise NotImplementedError

    def load(self, text):
        raise NotImplementedError

    def feature_importances(self, booster, n_features):
        """Total gain per feature, (n_features,)."""
        raise NotImplementedError

    # -- Dask ------------------------------------------------------------------------------------
    def dask_train(self, client, params, X, y, loss, init, *, margin=None, weight=None, qid=None,
                   group_sizes=None, num_boost_round=100, n_threads=1, callbacks=None, evals=(), metric=None,
                   early_stopping_rounds=None, verbose=False):
        """Train through the engine's Dask interface from the constant ``init`` (``margin``: the same as
        a Dask collection partitioned like X, or None when it is 0). Query groups come as ``qid`` or as
        per-partition ``group_sizes``, whichever the engine takes. ``evals``: ``DaskEvalSet``s watched
        under ``validation_<i>`` with the selboost ``metric``, evaluated on the workers that hold them
        (``PartMetric``) every round; the last one drives early stopping, which stops the training.
        Returns a ``TrainResult`` whose booster is the engine's Dask model."""
        raise NotImplementedError

    def dask_booster(self, model):
        """The local booster of a Dask model."""
        raise NotImplementedError

    def dask_predict_raw(self, client, model, X, init, iteration_range=None):
        """Raw scores (a Dask array) of a Dask-trained model, including the initial score."""
        raise NotImplementedError


_GPU_STATUS: dict = {}


def train_result(booster, results, metric, best_iteration=None):
    """A ``TrainResult`` from an engine's history: the best score is the metric on the last evaluation
    set at ``best_iteration`` (early stopping) or at the last round."""
    results = {name: dict(value) for name, value in results.items()}
    best_score = None
    if results and metric is not None:
        history = results[list(results)[-1]].get(metric.name, [])
        if history:
            best_score = float(history[-1 if best_iteration is None else best_iteration])
    return TrainResult(booster, best_iteration, best_score, results)
