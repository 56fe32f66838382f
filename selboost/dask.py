"""selboost objectives on Dask: ``xgboost.dask`` and ``lightgbm.dask``.

What runs where. Both engines train one booster per Dask worker on the partitions that worker holds and
combine the per-worker gradient histograms with their own allreduce. The objective is shipped to every
worker once (it pickles to its loss and options); on a worker it binds the loss to that worker's local
training data once (labels, groups and weights validated there) and then computes every round's
gradients and hessians locally. Nothing extra crosses the network per round: gradients stay on the
worker.

- ``xgboost_dask_objective(loss)``: ``obj=`` for ``xgboost.dask.train(client, params, dtrain, obj=...)``.
- ``lightgbm_sklearn_objective(loss)``: ``objective=`` for LightGBM's scikit-learn and Dask estimators
  (``lightgbm.dask.DaskLGBMRegressor/Ranker/Classifier``). LightGBM's scikit-learn wrapper calls a
  callable objective as ``f(y_true, y_pred)``, ``f(y_true, y_pred, weight)`` or
  ``f(y_true, y_pred, weight, group)`` chosen by its number of parameters, with the worker's
  constructed Dataset's label, raw scores ((n, k) for ``num_class=k``), per-row weights (or None) and
  group sizes (or None); it does not apply the weights itself. This objective takes all four.

The initial score is computed over the whole dataset with Dask reductions, not per partition:
``init_score(loss, y, sample_weight)`` is ``h^{-1}(sum w h(y) / sum w)`` for a ``SelectiveLoss`` and the
per-class constants from the weighted class frequencies for a ``MulticlassLoss`` (0 for listwise and
pairwise losses); ``init_margin(init, X)`` turns it into a ``base_margin`` / ``init_score`` collection
partitioned like ``X``.

Ranking: a query group must lie inside one partition (each worker sees only its own partitions).
``check_query_partitions(qid)`` raises a ``ValueError`` naming the query id and the partitions when a
group is split, and returns each partition's group sizes; ``partition_by_query(qid, *arrays)``
re-chunks arrays so that partition boundaries fall between groups.

Estimators that take Dask collections and a ``client``, as ``xgboost.dask.DaskXGBRegressor`` and
``lightgbm.dask.DaskLGBMRegressor`` do: ``DaskSelectiveRegressor``, ``DaskSelectiveRanker``,
``DaskSelectiveClassifier``. They subclass ``SelectiveRegressor``, ``SelectiveRanker`` and
``SelectiveClassifier``: the same parameters (``engine="xgboost"`` or ``"lightgbm"``, ...) and checks,
plus ``client``, ``init_score`` and ``n_threads``; ``fit`` takes the same arguments; ``eval_set`` and
``early_stopping_rounds`` as there, evaluated on the workers that hold the eval sets and summed over them
every round, early stopping stopping the training (see ``_DaskSelectiveModel``); ``predict`` returns Dask
arrays.

What each engine's Dask interface can do:

==========================  ==============================  =====================================
loss                        xgboost.dask                    lightgbm.dask
==========================  ==============================  =====================================
SelectiveLoss               yes, per-row weights            yes, per-row weights
ListwiseLoss/PairwiseLoss   yes (``qid``), no weights [1]   yes (``group`` per partition), per-row
                                                            weights
MulticlassLoss              yes (``num_class``), weights    yes (``num_class``), weights
==========================  ==============================  =====================================

[1] ``xgboost.dask.DaskDMatrix`` refuses weights together with ``qid`` ("per-group weight is not
implemented"); the ranker raises a ``ValueError`` saying so.

LightGBM finds each feature's bins on the rows of one worker: partitions should look alike (shuffle
rows, or whole queries, before partitioning data stored in time order).
"""

from __future__ import annotations

from numbers import Integral

import dask
import dask.array as da
import numpy as np
from sklearn.utils._param_validation import HasMethods, Options, StrOptions

from selboost._validation import check_feature_columns, check_query_ids
from selboost.engines import DaskEvalSet, get_engine
from selboost.links import Identity, Sigmoid
from selboost.estimators import (
    SelectiveClassifier,
    SelectiveRanker,
    SelectiveRegressor,
    _Interval,
    _SelectiveBoosting,
    eval_entries,
    total_start_hessian,
)
from selboost.losses import (ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, auto_group_scale, check_loss,
                             plain_softmax_start_hessian)

__all__ = [
    "xgboost_dask_objective",
    "lightgbm_sklearn_objective",
    "init_score",
    "init_margin",
    "check_query_partitions",
    "partition_by_query",
    "DaskSelectiveRegressor",
    "DaskSelectiveRanker",
    "DaskSelectiveClassifier",
]

# ================================================================ objectives that travel to workers


def xgboost_dask_objective(loss, *, n_threads=1, hess_scale=1.0):
    """A selboost loss as ``obj=`` for ``xgboost.dask.train``: ``selboost.xgboost_objective`` itself.

    It pickles to its loss and options; each worker binds the loss once to its own DMatrix (labels,
    groups and weights validated there) and reuses its float32 buffers every round."""
    return get_engine("xgboost").dask_objective(loss, n_threads=n_threads, hess_scale=hess_scale)


def lightgbm_sklearn_objective(loss, *, n_threads=1, hess_scale=1.0):
    """A selboost loss as ``objective=`` for ``lightgbm.LGBMRegressor``/``LGBMRanker`` and their Dask
    versions in ``lightgbm.dask`` (``selboost.engines.lightgbm.LightGBMSklearnObjective``)."""
    return get_engine("lightgbm").dask_objective(loss, n_threads=n_threads, hess_scale=hess_scale)


# ================================================================ Dask collections


def _is_dask_frame(value):
    return type(value).__module__.startswith("dask.dataframe") or type(value).__module__.startswith("dask_expr")


def _as_dask_array(value, name, *, ndim=(1,), rows_like=None, numeric=True):
    """A Dask array from a Dask array, DataFrame or Series; NumPy input is accepted when
    ``rows_like`` (a Dask array) gives the row chunks. Rows are re-chunked like ``rows_like``."""
    if value is None:
        return None
    if isinstance(value, da.Array):
        array = value
    elif _is_dask_frame(value):
        if numeric:
            check_feature_columns(value, name)
        array = value.to_dask_array(lengths=True)
    elif rows_like is not None and (isinstance(value, (np.ndarray, list, tuple)) or _is_pandas(value)):
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != rows_like.shape[0]:
            raise ValueError(f"{name} has {array.shape[0] if array.ndim else 0} rows, X has {rows_like.shape[0]}")
        chunks = (rows_like.chunks[0],) + tuple((s,) for s in array.shape[1:])
        array = da.from_array(array, chunks=chunks)
    else:
        raise TypeError(
            f"{name} must be a Dask array, DataFrame or Series"
            + (" (or a NumPy array aligned with X)" if rows_like is not None else "")
            + f", got {type(value).__name__}"
        )
    if array.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), got shape {array.shape}")
    if numeric and array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if any(np.isnan(c) for c in array.chunks[0]):
        array = array.compute_chunk_sizes()
    if rows_like is not None:
        if array.shape[0] != rows_like.shape[0]:
            raise ValueError(f"{name} has {array.shape[0]} rows, X has {rows_like.shape[0]}")
        if array.chunks[0] != rows_like.chunks[0]:
            array = array.rechunk({0: rows_like.chunks[0]})
    return array


def _is_pandas(value):
    return type(value).__module__.startswith("pandas")


def _as_weights(sample_weight, name, rows_like):
    weight = _as_dask_array(sample_weight, name, rows_like=rows_like)
    if weight is None:
        return None
    return weight.astype(np.float64)


def _check_weight_stats(weight_stats, name):
    finite, negative, positive = weight_stats
    if not finite:
        raise ValueError(f"{name} must be finite")
    if negative:
        raise ValueError(f"{name} must be non-negative")
    if not positive:
        raise ValueError(f"{name} must not be all zero")


def _weight_stats(weight):
    return (da.isfinite(weight).all(), (weight < 0).any(), (weight > 0).any())


# ================================================================ initial score


def init_score(loss, y, sample_weight=None, *, n_classes=None):
    """The loss's optimal constant raw score over the whole Dask dataset (Dask reductions; only a few
    numbers reach the client).

    - ``SelectiveLoss``: ``c* = h^{-1}(sum_i w_i h(y_i) / sum_i w_i)`` (with ``target="link"`` the
      labels already are ``h(y)``); returns a float equal to ``loss.init_score(y, w)`` on the gathered
      data up to summation order.
    - ``MulticlassLoss``: per-class constants c with ``softmax(phi(c))`` = the weighted class
      frequencies ``f_c = sum_i w_i q_ic / sum_i w_i`` (``q`` one-hot class indices or probability
      rows); returns a (k,) array. Pass ``n_classes`` when a class may be absent.
    - ``ListwiseLoss`` / ``PairwiseLoss``: 0.0 (moving a whole group changes nothing).

    ``y`` and ``sample_weight`` are Dask arrays or Series (``sample_weight`` may also be NumPy).
    """
    check_loss(loss)
    if isinstance(loss, (ListwiseLoss, PairwiseLoss)):
        return 0.0
    ndim = (1, 2) if isinstance(loss, MulticlassLoss) else (1,)
    y = _as_dask_array(y, "y", ndim=ndim)
    weight = _as_weights(sample_weight, "sample_weight", y)
    if isinstance(loss, SelectiveLoss):
        return _scalar_init_score(loss, y.astype(np.float64), weight)
    return _multiclass_init_score(loss, y, weight, n_classes)


def _scalar_init_score(loss, y, weight):
    link = loss.link
    target_h = y.map_blocks(link.h, dtype=np.float64) if loss.target == "score" else y
    checks = [da.isfinite(y).all(), y.min(), y.max()]
    if weight is None:
        total, norm = target_h.sum(), y.shape[0]
    else:
        total, norm = (target_h * weight).sum(), weight.sum()
        checks += _weight_stats(weight)
    total, norm, finite, y_min, y_max, *weight_stats = dask.compute(total, norm, *checks)
    if not finite:
        raise ValueError("y must be finite")
    if weight is not None:
        _check_weight_stats(weight_stats, "sample_weight")
    if loss.target == "link":
        lo, hi = link.range
        closed = link.is_bounded
        below = y_min < lo or (y_min == lo and not closed)
        above = y_max > hi or (y_max == hi and not closed)
        if below or above:
            raise ValueError(
                f"y must lie in the link's range ({lo}, {hi}) for target='link', found values in [{y_min}, {y_max}]"
            )
    mean = float(total / norm)
    # The clipping and the inverse are the single-machine loss's own: one target equal to the weighted
    # mean of h(y), given in the link's range, has c* as its optimal constant.
    return SelectiveLoss(link, target="link").bind(np.array([mean])).init_score()


def _multiclass_init_score(loss, y, weight, n_classes):
    # the weight total and checks ride along with the label checks: one pass over the data for those
    checks = [] if weight is None else [weight.sum(), *_weight_stats(weight)]
    if y.ndim == 2:
        k = y.shape[1]
        if n_classes is not None and n_classes != k:
            raise ValueError(f"y has {k} probability columns but n_classes={n_classes}")
        q = y.astype(np.float64)
        row_error = abs(q.sum(axis=1) - 1.0).max()
        weighted = q if weight is None else q * weight[:, None]
        sums, finite, q_min, q_max, row_error, *weight_checks = dask.compute(
            weighted.sum(axis=0), da.isfinite(q).all(), q.min(), q.max(), row_error, *checks
        )
        if not finite:
            raise ValueError("y must be finite")
        if weight is not None:
            _check_weight_stats(weight_checks[1:], "sample_weight")
        if q_min < 0 or q_max > 1:
            raise ValueError("y probabilities must lie in [0, 1]")
        if row_error > 1e-6:
            raise ValueError(f"y probability rows must sum to 1, one is off by {row_error}")
    else:
        whole = (y == da.round(y)).all() if y.dtype.kind == "f" else True
        finite = da.isfinite(y).all() if y.dtype.kind == "f" else True
        label_min, label_max, finite, whole, *weight_checks = dask.compute(y.min(), y.max(), finite, whole, *checks)
        if not (finite and whole) or label_min < 0:
            raise ValueError("y class labels must be finite non-negative integers")
        if weight is not None:
            _check_weight_stats(weight_checks[1:], "sample_weight")
        k = int(label_max) + 1 if n_classes is None else int(n_classes)
        if label_max >= k:
            raise ValueError(f"y holds class {int(label_max)} but n_classes={k}")
        if k < 2:
            raise ValueError(f"multi-class needs at least 2 classes, got {k}")
        sums = da.bincount(y.astype(np.int64), weights=weight, minlength=k).compute()
    norm = y.shape[0] if weight is None else float(weight_checks[0])
    frequencies = np.asarray(sums, dtype=np.float64) / norm
    # one probability row equal to the frequencies: the single-machine formula applied to them
    return np.asarray(loss.init_score(frequencies[None, :], n_classes=k), dtype=np.float64)


def init_margin(init, X):
    """A Dask array holding ``init`` on every row of ``X``, partitioned like ``X``: shape (n,) for a
    number, (n, k) for a (k,) vector. Pass it as ``base_margin=`` (``xgboost.dask.DaskDMatrix``) or
    ``init_score=`` (``lightgbm.dask`` estimators' ``fit``)."""
    rows = _as_dask_array(X, "X", ndim=(1, 2)).chunks[0]
    init = np.asarray(init, dtype=np.float64)
    n = sum(rows)
    if init.ndim == 0:
        return da.full((n,), float(init), chunks=(rows,), dtype=np.float64)
    if init.ndim == 1:
        return da.broadcast_to(init, (n, init.size), chunks=(rows, (init.size,))).copy()
    raise ValueError(f"init must be a number or a (k,) vector, got shape {init.shape}")


# ================================================================ query groups and partitions


def _runs(block):
    """Run-length encoding of one partition's qid: (values, lengths)."""
    block = check_query_ids(block).ravel()
    if block.size == 0:
        return block[:0], np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(block[1:] != block[:-1]) + 1))
    lengths = np.diff(np.append(starts, block.size)).astype(np.int64)
    return block[starts], lengths


def _partition_runs(qid):
    qid = _as_dask_array(qid, "qid")
    blocks = qid.to_delayed().ravel()
    return qid, dask.compute(*[dask.delayed(_runs)(block) for block in blocks])


def _split_group_error(value, first, second, where):
    return ValueError(
        f"qid: query id {value!r} {where} partitions {first} and {second}; a query group must lie inside "
        "one partition (each worker sees only its own partitions). Re-partition with "
        "selboost.dask.partition_by_query(qid, X, y, ...)"
    )


def check_query_partitions(qid):
    """Check that no query group spans partitions; returns each partition's group sizes (a list of
    int64 arrays, in row order), as ``lightgbm.dask``'s ``group=`` wants them.

    Rows of one query must be consecutive. Raises a ``ValueError`` naming the query id and the
    partitions when a group is split: each partition's last qid is compared with the next non-empty
    partition's first, and no qid may occur in two partitions or in two separate runs. Only one
    value per group reaches the client.
    """
    _, runs = _partition_runs(qid)
    _check_runs(runs)
    return [lengths for _, lengths in runs]


def _check_runs(runs):
    previous = None
    for index, (values, _) in enumerate(runs):
        if values.size == 0:
            continue
        if previous is not None and runs[previous][0][-1] == values[0]:
            raise _split_group_error(values[0].item(), previous, index, "spans")
        previous = index
        if np.unique(values).size != values.size:
            value = _first_repeat(values)
            raise ValueError(
                f"qid: the rows of query id {value!r} are not consecutive inside partition {index}; "
                "sort the rows by query id"
            )
    values = np.concatenate([v for v, _ in runs])
    owner = np.concatenate([np.full(v.size, i) for i, (v, _) in enumerate(runs)])
    unique, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        value = unique[counts > 1][0]
        parts = np.unique(owner[values == value])
        raise _split_group_error(value.item(), int(parts[0]), int(parts[1]), "occurs in")


def _first_repeat(values):
    unique, counts = np.unique(values, return_counts=True)
    return unique[counts > 1][0].item()


def partition_by_query(qid, *arrays, npartitions=None):
    """Re-chunk ``qid`` and ``arrays`` (X, y, weights, ... with the same rows) so that every query
    group lies inside one partition; returns ``(qid, *arrays)`` as Dask arrays.

    The rows of each query must be consecutive (sort by qid first); groups may span the current
    partitions. New boundaries are the group ends nearest to ``n * j / npartitions`` (default: the
    current number of partitions). Only one value and one size per group reach the client.
    """
    if npartitions is not None:
        if isinstance(npartitions, bool) or not isinstance(npartitions, (int, np.integer)):
            raise TypeError(f"npartitions must be a positive int or None, got {npartitions!r}")
        if npartitions < 1:
            raise ValueError(f"npartitions must be >= 1, got {npartitions!r}")
    qid, runs = _partition_runs(qid)
    # one value and one size per group; a group continuing into the next partition is merged
    group_values, group_sizes = [], []
    for values, lengths in runs:
        if values.size == 0:
            continue
        first = 0
        if group_values and group_values[-1] == values[0]:
            group_sizes[-1] += int(lengths[0])
            first = 1
        group_values.extend(values[first:].tolist())
        group_sizes.extend(lengths[first:].tolist())
    group_values = np.asarray(group_values)
    sizes = np.asarray(group_sizes, dtype=np.int64)
    if np.unique(group_values).size != group_values.size:
        raise ValueError(
            f"qid: the rows of query id {_first_repeat(group_values)!r} are not consecutive; sort the rows by query id"
        )
    if npartitions is None:
        npartitions = qid.numblocks[0]
    ends = np.cumsum(sizes)
    n = int(ends[-1])
    targets = n * np.arange(1, npartitions) / npartitions
    nearest = np.clip(np.searchsorted(ends, targets), 0, ends.size - 1)
    below = np.clip(nearest - 1, 0, ends.size - 1)
    pick = np.where(np.abs(ends[below] - targets) <= np.abs(ends[nearest] - targets), below, nearest)
    boundaries = np.unique(np.concatenate((ends[pick], [n])))
    chunks = tuple(int(c) for c in np.diff(np.concatenate(([0], boundaries))))
    out = [qid.rechunk({0: chunks})]
    for index, array in enumerate(arrays):
        array = _as_dask_array(array, f"arrays[{index}]", ndim=(1, 2))
        if array.shape[0] != n:
            raise ValueError(f"arrays[{index}] has {array.shape[0]} rows, qid has {n}")
        out.append(array.rechunk({0: chunks}))
    return tuple(out)


def _qid_from_group(group, rows):
    """Row-level query ids from group sizes given per partition (``lightgbm.dask``'s convention: the
    group chunk i holds the sizes of the groups in X's partition i)."""
    group = _as_dask_array(group, "group")
    blocks = group.to_delayed().ravel()
    if len(blocks) != len(rows):
        raise ValueError(
            f"group has {len(blocks)} partitions but X has {len(rows)}: group partition i must hold the "
            "sizes of the query groups in X's partition i"
        )
    sizes = dask.compute(*blocks)
    parts, offset = [], 0
    for index, (part, n_rows) in enumerate(zip(sizes, rows)):
        part = np.asarray(part, dtype=np.int64)
        if part.sum() != n_rows or (part <= 0).any():
            raise ValueError(
                f"group partition {index} has sizes summing to {part.sum()}, but X's partition {index} has "
                f"{n_rows} rows (sizes must be positive)"
            )
        parts.append(da.from_array(np.repeat(np.arange(offset, offset + part.size), part), chunks=n_rows))
        offset += part.size
    return da.concatenate(parts)


# ================================================================ estimators


def _get_client(client):
    if client is not None:
        return client
    from distributed import default_client

    return default_client()


#: What the Dask estimators add to the constraints of the single-machine ones they subclass (each
#: merges them into its ``_parameter_constraints``); ``device``: the CPU only (XGBoost's device goes
#: through ``engine_params``); ``n_threads`` as ``selboost._validation.check_n_threads``.
_DASK_CONSTRAINTS = {
    "client": [None, HasMethods(["submit", "persist"])],
    "init_score": ["boolean"],
    "n_threads": [_Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
    "device": [StrOptions({"cpu"})],
}


class _DaskSelectiveModel:
    """What the Dask estimators add to the single-machine ones they subclass (whose parameters,
    validation, parameter builder, eval-set reading and prediction rules they inherit): ``client``,
    ``init_score`` (start from the loss's optimal constant over the whole dataset, default True; False
    starts from 0) and ``n_threads`` (the threads of the objective's kernels on each worker, default 1).
    Training runs through the engine's Dask interface (``Engine.dask_train``); ``predict`` is lazy and
    returns Dask arrays.

    ``fit`` takes the single-machine estimator's arguments. ``eval_set``: (X, y) pairs of Dask
    collections (or NumPy arrays, chunked like X); each stays on the workers, which evaluate the metric
    on the rows they hold every round and sum their parts (``Engine.dask_train``); with
    ``early_stopping_rounds`` the training stops ``early_stopping_rounds`` rounds after the best one
    (``best_iteration_``). Not offered on Dask: ``device`` other than "cpu" (pass XGBoost's ``device``
    through ``engine_params``).
    """

    _dask_params = ("client", "init_score", "n_threads")

    def __init__(self, loss=None, *, client=None, init_score=True, n_threads=1, **params):
        super().__init__(loss, **params)
        self.client = client
        self.init_score = init_score
        self.n_threads = n_threads

    @classmethod
    def _get_param_names(cls):
        # the single-machine estimators' parameters (their __init__) plus the Dask ones
        return sorted(set(_SelectiveBoosting._get_param_names()) | set(cls._dask_params))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def _reset_features(self, X):
        X = _as_dask_array(X, "X", ndim=(2,))
        self.n_features_in_ = X.shape[1]
        return X

    def _dask_X(self, X):
        X = _as_dask_array(X, "X", ndim=(2,))
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        return X

    def _dask_eval_pairs(self, pairs, numeric=True):
        """``eval_entries``'s (X, y) pairs as Dask arrays, y chunked like X (new arrays)."""
        arrays = []
        for i, (X_eval, y_eval) in enumerate(pairs):
            X_eval = _as_dask_array(X_eval, f"eval_set[{i}] X", ndim=(2,))
            if X_eval.shape[1] != self.n_features_in_:
                raise ValueError(f"eval_set[{i}]: X must have {self.n_features_in_} features, got shape {X_eval.shape}")
            arrays.append((X_eval, _as_dask_array(y_eval, f"eval_set[{i}] y", rows_like=X_eval, numeric=numeric)))
        return arrays

    @staticmethod
    def _eval_margin(init, X_eval):
        return init_margin(init, X_eval) if np.any(np.asarray(init) != 0) else None

    def _fit_dask(self, engine, X, y, loss, *, weight=None, qid=None, group_sizes=None, n_classes=None,
                  init=0.0, evals=(), callbacks=None, verbose=False, start_hessian=None):
        """Train through ``engine``'s Dask interface with the parameters the single-machine estimator
        builds; ``evals``: ``DaskEvalSet``s; ``start_hessian``: as for ``_engine_params``."""
        if self.early_stopping_rounds is not None and not evals:
            raise ValueError("early_stopping_rounds needs an eval_set to watch")
        client = _get_client(self.client)
        init = np.asarray(init, dtype=np.float64)
        n_outputs = loss.n_outputs(n_classes)
        params = self._engine_params(engine, n_outputs, start_hessian)
        margin = init_margin(init, X) if np.any(init != 0) else None
        result = engine.dask_train(client, params, X, y, loss, init, margin=margin, weight=weight, qid=qid,
                                   group_sizes=group_sizes, num_boost_round=int(self.n_estimators),
                                   n_threads=self.n_threads, callbacks=callbacks, evals=list(evals),
                                   metric=self._eval_metric(loss) if evals else None,
                                   early_stopping_rounds=self.early_stopping_rounds, verbose=verbose)
        self.engine_ = engine.name
        self.model_ = result.booster
        self.booster_ = engine.dask_booster(result.booster)
        self.init_score_ = init if init.ndim else float(init)
        self.n_outputs_ = n_outputs
        self.n_features_in_ = X.shape[1]
        self.best_iteration_ = result.best_iteration
        self.best_score_ = result.best_score
        self.evals_result_ = dict(result.evals_result)
        return self

    def predict_raw(self, X, iteration_range=None):
        """Raw scores as a Dask array, including the initial score: (n,), or (n, k) for multi-class."""
        if not hasattr(self, "booster_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit first")
        X = self._dask_X(X)
        return get_engine(self.engine_).dask_predict_raw(_get_client(self.client), self.model_, X, self.init_score_,
                                                         self._iteration_range(iteration_range))


class DaskSelectiveRegressor(_DaskSelectiveModel, SelectiveRegressor):
    """Regression with a ``SelectiveLoss`` on Dask collections (default: square loss).

    ``fit`` as ``SelectiveRegressor.fit``, with Dask arrays or DataFrames (``y`` /
    ``sample_weight`` aligned with ``X``'s partitions), trained through the engine's Dask interface
    (``xgboost.dask.train`` or ``lightgbm.dask.DaskLGBMRegressor``), starting from
    ``c* = h^{-1}(sum w h(y) / sum w)`` computed over the whole dataset (``init_score=False`` starts
    from 0). ``predict(X)`` returns a Dask array of scores (``h(z)`` for ``target="link"``).
    ``client`` defaults to the current Dask client.
    """

    _parameter_constraints = {**SelectiveRegressor._parameter_constraints, **_DASK_CONSTRAINTS}

    def fit(self, X, y, sample_weight=None, *, eval_set=None, eval_sample_weight=None, callbacks=None,
            verbose=False):
        engine = self._check_params()  # the Dask parameters too: _DASK_CONSTRAINTS
        X = self._reset_features(X)
        y = _as_dask_array(y, "y", rows_like=X).astype(np.float64)
        weight = _as_weights(sample_weight, "sample_weight", X)
        # a region given as quantiles is resolved on the whole target column (and weights), gathered once
        loss = self._fit_loss(SelectiveLoss(Identity()), y, weight)
        init = init_score(loss, y, weight) if self.init_score else 0.0
        pairs, extra = eval_entries(eval_set, eval_sample_weight=eval_sample_weight)
        evals = [DaskEvalSet(X_eval, y_eval.astype(np.float64),
                             weight=_as_weights(w, f"eval_sample_weight[{i}]", X_eval),
                             margin=self._eval_margin(init, X_eval))
                 for i, ((X_eval, y_eval), w) in enumerate(zip(self._dask_eval_pairs(pairs), extra["eval_sample_weight"]))]
        return self._fit_dask(engine, X, y, loss, weight=weight, init=init, evals=evals, callbacks=callbacks,
                              verbose=verbose)

    def predict(self, X, output_margin=False, raw_score=False, iteration_range=None):
        raw = self.predict_raw(X, iteration_range)
        if output_margin or raw_score:
            return raw
        return raw.map_blocks(self.loss_.predict, dtype=np.float64)


class DaskSelectiveRanker(_DaskSelectiveModel, SelectiveRanker):
    """Learning to rank with a ``ListwiseLoss`` (default) or ``PairwiseLoss`` on Dask collections (a
    ``SelectiveLoss`` is accepted too: pointwise ranking, started from its optimal constant).

    ``fit`` as ``SelectiveRanker.fit`` (``group_weight`` excepted): ``qid`` is a row-aligned query id (rows of a query consecutive, no query spanning two partitions: see
    ``partition_by_query``), or ``group`` holds group sizes with one partition per X partition
    (``lightgbm.dask``'s convention). A split group raises a ``ValueError`` before training.
    ``sample_weight`` is per row and needs an engine whose Dask interface takes weights with groups
    (LightGBM: ``xgboost.dask`` does not). ``predict(X)`` returns a Dask array of ranking scores.
    """

    _parameter_constraints = {**SelectiveRanker._parameter_constraints, **_DASK_CONSTRAINTS}

    def fit(self, X, y, *, group=None, qid=None, sample_weight=None, group_weight=None, eval_set=None,
            eval_group=None, eval_qid=None, callbacks=None, verbose=False):
        engine = self._check_params()  # the Dask parameters too: _DASK_CONSTRAINTS
        loss = self._fit_loss(ListwiseLoss())
        if group_weight is not None:
            raise ValueError("group_weight is not offered on Dask: neither engine's Dask interface takes "
                             "per-group weights (give per-row sample_weight with engine='lightgbm')")
        X = self._reset_features(X)
        y = _as_dask_array(y, "y", rows_like=X).astype(np.float64)
        qid, sizes = _dask_groups(group, qid, X)
        loss = _whole_set_group_scale(loss, y, sizes)
        weight = _as_weights(sample_weight, "sample_weight", X)
        if weight is not None and not engine.dask_weights_with_groups:
            raise ValueError(
                f"sample_weight with query groups needs engine='lightgbm': {engine.name}'s Dask interface does "
                "not take weights together with qid"
            )
        init = init_score(loss, y, weight) if self.init_score else 0.0  # 0 for group losses
        pairs, extra = eval_entries(eval_set, eval_group=eval_group, eval_qid=eval_qid)
        evals = []
        for i, ((X_eval, y_eval), g, q) in enumerate(zip(self._dask_eval_pairs(pairs), extra["eval_group"],
                                                          extra["eval_qid"])):
            q, s = _dask_groups(g, q, X_eval, f"eval_group[{i}]", f"eval_qid[{i}]")
            evals.append(DaskEvalSet(X_eval, y_eval.astype(np.float64), qid=q, group_sizes=s,
                                     margin=self._eval_margin(init, X_eval)))
        groups = {"group_sizes": sizes} if engine.dask_weights_with_groups else {"qid": qid}
        return self._fit_dask(engine, X, y, loss, weight=weight if engine.dask_weights_with_groups else None,
                              init=init, evals=evals, callbacks=callbacks, verbose=verbose,
                              start_hessian=lambda: _total_start_hessian(loss, y, sizes, engine), **groups)

    def predict(self, X, output_margin=False, raw_score=False, iteration_range=None):
        return self.predict_raw(X, iteration_range)


def _dask_groups(group, qid, X, group_name="group", qid_name="qid"):
    """(row-aligned qid, each partition's group sizes) from ``qid`` or per-partition ``group`` sizes;
    a group split between partitions is a ValueError before training."""
    if (qid is None) == (group is None):
        raise ValueError(f"pass exactly one of {qid_name} (a query id per row) and {group_name} (group sizes "
                         "per partition)")
    if group is not None:
        qid = _qid_from_group(group, X.chunks[0])
    qid = _as_dask_array(qid, qid_name, rows_like=X)
    return qid, check_query_partitions(qid)


def _plain_start_hessian(loss, y_block, sizes):
    if sizes.size == 0:
        return 0.0
    bound = loss.bind_data(y_block, sizes)
    return plain_softmax_start_hessian(bound.q, bound.group_ptr)


def _whole_set_group_scale(loss, y, partition_sizes):
    """``loss`` with ``group_scale="auto"`` resolved over the whole training set, as a single machine
    resolves it at bind: each worker binds only its own partitions, whose totals would each be scaled
    apart instead."""
    if not isinstance(loss, ListwiseLoss) or loss.group_scale != "auto":
        return loss
    plain = type(loss)(**{**loss.get_params(deep=False), "group_scale": None})
    parts = [dask.delayed(_plain_start_hessian)(plain, block, sizes)
             for block, sizes in zip(y.to_delayed().ravel(), partition_sizes)]
    scale = auto_group_scale(float(sum(dask.compute(*parts))))
    if scale is None:  # no group holds an order to learn: as a single machine, no weight
        return plain
    return type(loss)(**{**loss.get_params(deep=False), "group_scale": scale})


def _partition_start_hessian(loss, y_block, sizes, score_dtype):
    if sizes.size == 0:
        return None
    return total_start_hessian(loss.bind_data(y_block, sizes), score_dtype)


def _total_start_hessian(loss, y, partition_sizes, engine):
    """``total_start_hessian`` of the whole training set: the sum of every partition's, computed on the
    workers (one value per partition reaches the client)."""
    parts = [dask.delayed(_partition_start_hessian)(loss, block, sizes, engine.score_dtype)
             for block, sizes in zip(y.to_delayed().ravel(), partition_sizes)]
    values = [value for value in dask.compute(*parts) if value is not None]
    return sum(values) if values else None


def _class_targets(block, classes, loss, name):
    codes = np.searchsorted(classes, block)
    unknown = (codes >= classes.size) | (classes[np.minimum(codes, classes.size - 1)] != block)
    if unknown.any():
        raise ValueError(f"{name}: labels {np.unique(block[unknown])[:5]} are not among the classes seen in y")
    return loss.class_targets(codes, classes.size)


def _decode_classes(proba, classes):
    return classes[np.argmax(proba, axis=1)]


class DaskSelectiveClassifier(_DaskSelectiveModel, SelectiveClassifier):
    """Classification on Dask collections with the losses ``SelectiveClassifier`` takes: binary with a
    ``SelectiveLoss(link, target="link")`` (default for two classes: the logistic loss), multi-class
    with a ``MulticlassLoss`` (default for more: softmax cross-entropy).

    ``fit`` as ``SelectiveClassifier.fit``: ``y`` holds class labels (any sortable values, encoded as
    ``classes_``); the engine starts from the loss's optimal constant over the whole dataset (the
    weighted class frequencies). ``predict_proba(X)`` and ``predict(X)`` (the most probable class) as
    there; both are Dask arrays.
    """

    _parameter_constraints = {**SelectiveClassifier._parameter_constraints, **_DASK_CONSTRAINTS}

    def fit(self, X, y, sample_weight=None, *, eval_set=None, eval_sample_weight=None, callbacks=None,
            verbose=False):
        engine = self._check_params()  # the Dask parameters too: _DASK_CONSTRAINTS
        X = self._reset_features(X)
        y = _as_dask_array(y, "y", rows_like=X, numeric=False)
        weight = _as_weights(sample_weight, "sample_weight", X)
        self.classes_ = np.asarray(da.unique(y).compute())
        k = self.classes_.size
        if k < 2:
            raise ValueError(f"DaskSelectiveClassifier needs samples of at least 2 classes, got {k} class")
        self.n_classes_ = k
        loss = self._fit_loss(SelectiveLoss(0.25 * Sigmoid(), target="link") if k == 2 else MulticlassLoss())
        loss.class_targets(np.arange(k), k)  # a loss that cannot take k classes says so before any work
        # persisted: the targets feed several graphs (the initial score, then the engine's data)
        targets = _get_client(self.client).persist(self._targets(y, loss))
        n_classes = k if loss.n_outputs(k) > 1 else None
        if self.init_score:
            init = init_score(loss, targets, weight, n_classes=n_classes)
        else:
            init = np.zeros(k) if n_classes else 0.0
        pairs, extra = eval_entries(eval_set, eval_sample_weight=eval_sample_weight)
        evals = []
        for i, ((X_eval, y_eval), w) in enumerate(zip(self._dask_eval_pairs(pairs, numeric=False),
                                                      extra["eval_sample_weight"])):
            evals.append(DaskEvalSet(X_eval, self._targets(y_eval, loss, f"eval_set[{i}] y"),
                                     weight=_as_weights(w, f"eval_sample_weight[{i}]", X_eval),
                                     margin=self._eval_margin(init, X_eval)))
        return self._fit_dask(engine, X, targets, loss, weight=weight, n_classes=k, init=init, evals=evals,
                              callbacks=callbacks, verbose=verbose)

    def _targets(self, labels, loss, name="y"):
        """The loss's training targets of class labels (Dask; labels outside ``classes_`` are refused
        where the block is computed)."""
        return labels.map_blocks(_class_targets, self.classes_, loss, name, dtype=np.float64)

    def predict_proba(self, X, iteration_range=None):
        raw = self.predict_raw(X, iteration_range)
        return raw.map_blocks(self.loss_.predict_proba, dtype=np.float64,
                              chunks=(raw.chunks[0], (self.n_classes_,)), new_axis=None if raw.ndim == 2 else 1)

    def predict(self, X, output_margin=False, raw_score=False, iteration_range=None):
        if output_margin or raw_score:
            return self.predict_raw(X, iteration_range)
        proba = self.predict_proba(X, iteration_range)
        return proba.map_blocks(_decode_classes, self.classes_, drop_axis=1, dtype=self.classes_.dtype)
