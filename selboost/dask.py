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
``DaskSelectiveClassifier``; ``backend="xgboost"`` or ``"lightgbm"`` and the other parameters as in
``selboost.estimators``; ``predict`` returns Dask arrays.

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

import threading
import warnings
import weakref
from types import SimpleNamespace

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator

from selboost._validation import check_choice
from selboost.estimators import check_engine_params
from selboost.losses import (
    BoundSelectiveLoss,
    ListwiseLoss,
    MulticlassLoss,
    PairwiseLoss,
    SelectiveLoss,
)
from selboost.objectives import LightGBMObjective, XGBoostObjective, bind_loss, check_loss

__all__ = [
    "xgboost_dask_objective",
    "lightgbm_sklearn_objective",
    "LightGBMSklearnObjective",
    "init_score",
    "init_margin",
    "check_query_partitions",
    "partition_by_query",
    "DaskSelectiveRegressor",
    "DaskSelectiveRanker",
    "DaskSelectiveClassifier",
]

_BACKENDS = ("xgboost", "lightgbm")


# ================================================================ objectives that travel to workers


class LightGBMSklearnObjective:
    """``objective=`` for LightGBM's scikit-learn and Dask estimators:
    ``f(y_true, y_pred, weight, group) -> (grad, hess)``, float32 arrays.

    LightGBM's wrapper passes the constructed Dataset's label, the raw scores (``(n, k)`` with
    ``num_class=k``), the per-row weights (``None`` without) and the group sizes (``None`` without).
    The loss is bound on the first call for a label array (validated once) and reused while LightGBM
    passes the same array, which it does every round; in ``lightgbm.dask`` that is once per worker.
    ``MulticlassLoss`` takes the class count from ``y_pred``'s columns; the listwise and pairwise
    losses need ``group``. ``parallel`` and ``hess_scale`` as for ``selboost.lightgbm_objective``.
    """

    def __init__(self, loss, *, parallel=None, hess_scale=1.0):
        # validates the options and resolves the kernel choice (serial by default) exactly as the
        # single-machine adapter does
        self._adapter = LightGBMObjective(loss, parallel=parallel, hess_scale=hess_scale)
        self.loss = loss
        self.parallel = parallel
        self.hess_scale = hess_scale
        self._bindings = {}
        self._lock = threading.Lock()

    def __repr__(self):
        return f"LightGBMSklearnObjective({self.loss!r}, hess_scale={self.hess_scale!r})"

    def __getstate__(self):
        return {"loss": self.loss, "parallel": self.parallel, "hess_scale": self.hess_scale}

    def __setstate__(self, state):
        self.__init__(state["loss"], parallel=state["parallel"], hess_scale=state["hess_scale"])

    def _forget(self, key):
        self._bindings.pop(key, None)

    def _binding(self, y_true, y_pred, weight, group):
        key = id(y_true)
        entry = self._bindings.get(key)
        if entry is not None and entry[0]() is y_true:
            return entry[1]
        n_classes = y_pred.shape[1] if np.ndim(y_pred) == 2 else None
        bound = bind_loss(self._adapter.loss, y_true, group, weight, None, n_classes, len(y_true))
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
        bound.gradient_hessian(y_pred, grad, hess)
        if self._adapter.hess_scale != 1.0:
            hess *= self._adapter.hess_scale
        return grad, hess


def xgboost_dask_objective(loss, *, parallel=None, hess_scale=1.0):
    """A selboost loss as ``obj=`` for ``xgboost.dask.train``: ``selboost.xgboost_objective`` itself.

    It pickles to its loss and options; each worker binds the loss once to its own DMatrix (labels,
    groups and weights validated there) and reuses its float32 buffers every round."""
    return XGBoostObjective(loss, parallel=parallel, hess_scale=hess_scale)


def lightgbm_sklearn_objective(loss, *, parallel=None, hess_scale=1.0):
    """A selboost loss as ``objective=`` for ``lightgbm.LGBMRegressor``/``LGBMRanker`` and their Dask
    versions in ``lightgbm.dask`` (see ``LightGBMSklearnObjective``)."""
    return LightGBMSklearnObjective(loss, parallel=parallel, hess_scale=hess_scale)


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
    # The clipping and the inverse are the single-machine loss's own: its init_score reads only the
    # loss, the targets h(y) and the weights, so one target equal to the weighted mean gives c*.
    reduced = SimpleNamespace(spec=loss, target_h=np.array([mean]), weight=np.empty(0))
    return BoundSelectiveLoss.init_score(reduced)


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
    block = np.asarray(block).ravel()
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


def _check_number(value, name, low, *, integer=False, low_open=False, high=np.inf, allow_none=False):
    if value is None and allow_none:
        return None
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}{' or None' if allow_none else ''}, got {value!r}")
    if not np.isfinite(value) or value < low or (low_open and value == low) or value > high:
        raise ValueError(f"{name} must lie in {'(' if low_open else '['}{low}, {high}], got {value!r}")
    return value


class _DaskSelectiveModel(BaseEstimator):
    """Shared by the Dask estimators: the single-machine estimators' parameters (same names and
    meaning, see ``selboost.estimators``) plus ``client``; fit through either engine's Dask interface,
    predict lazily. Not offered on Dask: ``eval_set``/early stopping, ``device`` (pass XGBoost's
    ``device`` through ``engine_params``)."""

    def __init__(
        self,
        loss=None,
        *,
        backend="xgboost",
        n_estimators=100,
        learning_rate=0.1,
        max_depth=None,
        num_leaves=None,
        min_child_weight=None,
        subsample=1.0,
        colsample_bytree=1.0,
        reg_lambda=None,
        random_state=None,
        init_score=True,
        parallel=None,
        engine_params=None,
        client=None,
    ):
        self.loss = loss
        self.backend = backend
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.num_leaves = num_leaves
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.init_score = init_score
        self.parallel = parallel
        self.engine_params = engine_params
        self.client = client

    # -- shared pieces

    def _check(self):
        check_choice(self.backend, "backend", _BACKENDS)
        loss = self._default_loss() if self.loss is None else self.loss
        check_loss(loss)
        if not isinstance(loss, self._loss_types):
            names = " or ".join(t.__name__ for t in self._loss_types)
            raise TypeError(f"{type(self).__name__} needs a {names}, got {loss!r}")
        _check_number(self.n_estimators, "n_estimators", 1, integer=True)
        _check_number(self.learning_rate, "learning_rate", 0.0, low_open=True)
        _check_number(self.max_depth, "max_depth", 1, integer=True, allow_none=True)
        _check_number(self.num_leaves, "num_leaves", 2, integer=True, allow_none=True)
        _check_number(self.min_child_weight, "min_child_weight", 0.0, allow_none=True)
        _check_number(self.subsample, "subsample", 0.0, low_open=True, high=1.0)
        _check_number(self.colsample_bytree, "colsample_bytree", 0.0, low_open=True, high=1.0)
        _check_number(self.reg_lambda, "reg_lambda", 0.0, allow_none=True)
        _check_number(self.random_state, "random_state", 0, integer=True, allow_none=True)
        if not isinstance(self.init_score, (bool, np.bool_)):
            raise TypeError(f"init_score must be True or False, got {self.init_score!r}")
        check_engine_params(self.engine_params)
        self.backend_ = self.backend
        return loss

    def _xgboost_params(self, n_outputs):
        # base_score 0: the initial score comes as a base_margin collection and is added back in predict
        params = {"tree_method": "hist", "eta": float(self.learning_rate), "base_score": 0.0,
                  "verbosity": 0, "disable_default_eval_metric": 1}
        optional = {"max_depth": self.max_depth, "max_leaves": self.num_leaves,
                    "min_child_weight": self.min_child_weight, "lambda": self.reg_lambda,
                    "seed": self.random_state}
        if self.subsample != 1.0:
            params["subsample"] = self.subsample
        if self.colsample_bytree != 1.0:
            params["colsample_bytree"] = self.colsample_bytree
        if n_outputs > 1:
            params["num_class"] = n_outputs
        params.update({key: value for key, value in optional.items() if value is not None})
        params.update(self.engine_params or {})
        return params

    def _lightgbm_params(self, n_outputs):
        # no built-in metric: LGBMRegressor's default l2 would also clash with num_class
        params = {"n_estimators": int(self.n_estimators), "learning_rate": float(self.learning_rate),
                  "verbose": -1, "metric": "None"}
        optional = {"max_depth": self.max_depth, "num_leaves": self.num_leaves,
                    "min_child_weight": self.min_child_weight, "reg_lambda": self.reg_lambda,
                    "random_state": self.random_state}
        if self.subsample != 1.0:
            params.update(subsample=self.subsample, subsample_freq=1)
        if self.colsample_bytree != 1.0:
            params["colsample_bytree"] = self.colsample_bytree
        if n_outputs > 1:
            params["num_class"] = n_outputs
        params.update({key: value for key, value in optional.items() if value is not None})
        params.update(self.engine_params or {})
        return params

    def _fit(self, X, y, *, weight=None, qid=None, group_sizes=None, n_outputs=1, init=0.0):
        client = _get_client(self.client)
        init = np.asarray(init, dtype=np.float64)
        margin = init_margin(init, X) if np.any(init != 0) else None
        if self.backend == "xgboost":
            import xgboost.dask

            dtrain = xgboost.dask.DaskDMatrix(client, X, y, weight=weight, base_margin=margin, qid=qid)
            output = xgboost.dask.train(
                client, self._xgboost_params(n_outputs), dtrain, num_boost_round=int(self.n_estimators),
                obj=xgboost_dask_objective(self.loss_, parallel=self.parallel),
            )
            self.booster_ = output["booster"]
            self.model_ = None
        else:
            import lightgbm.dask

            objective = lightgbm_sklearn_objective(self.loss_, parallel=self.parallel)
            params = self._lightgbm_params(n_outputs)
            fit_args = {"sample_weight": weight, "init_score": margin}
            if group_sizes is not None:
                model = lightgbm.dask.DaskLGBMRanker(client=client, objective=objective, **params)
                chunks = (tuple(g.size for g in group_sizes),)
                fit_args["group"] = da.from_array(np.concatenate(group_sizes), chunks=chunks)
            else:
                model = lightgbm.dask.DaskLGBMRegressor(client=client, objective=objective, **params)
            with warnings.catch_warnings():
                # lightgbm.dask warns about its own default n_jobs, which it replaces by the worker's threads
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
                model.fit(X, y, **fit_args)
            self.model_ = model
            self.booster_ = model.booster_
        self.init_score_ = init if init.ndim else float(init)
        self.n_outputs_ = n_outputs
        self.n_features_in_ = X.shape[1]
        return self

    def predict_raw(self, X):
        """Raw scores as a Dask array, including the initial score: (n,), or (n, k) for multi-class."""
        if not hasattr(self, "booster_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit first")
        X = _as_dask_array(X, "X", ndim=(2,))
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        if self.backend_ == "xgboost":
            import xgboost.dask

            raw = xgboost.dask.predict(_get_client(self.client), self.booster_, X, output_margin=True)
        else:
            raw = self.model_.predict(X, raw_score=True)
        init = np.asarray(self.init_score_, dtype=np.float64)
        return raw + init if np.any(init != 0) else raw


class DaskSelectiveRegressor(_DaskSelectiveModel):
    """Regression with a ``SelectiveLoss`` on Dask collections (default: square loss).

    ``fit(X, y, sample_weight=None)`` with Dask arrays or DataFrames (``y``/``sample_weight`` aligned
    with ``X``'s partitions), trained with ``xgboost.dask.train`` (``backend="xgboost"``) or
    ``lightgbm.dask.DaskLGBMRegressor`` (``backend="lightgbm"``), starting from
    ``c* = h^{-1}(sum w h(y) / sum w)`` computed over the whole dataset (``init_score=False`` starts
    from 0). ``engine_params`` go to the engine unchanged. ``predict(X)`` returns a
    Dask array of scores (``h(z)`` for ``target="link"``: a prediction in the labels' units).
    ``client`` defaults to the current Dask client.
    """

    _loss_types = (SelectiveLoss,)
    _default_loss = SelectiveLoss

    def fit(self, X, y, sample_weight=None):
        self.loss_ = self._check()
        X = _as_dask_array(X, "X", ndim=(2,))
        y = _as_dask_array(y, "y", rows_like=X).astype(np.float64)
        weight = _as_weights(sample_weight, "sample_weight", X)
        init = init_score(self.loss_, y, weight) if self.init_score else 0.0
        return self._fit(X, y, weight=weight, init=init)

    def predict(self, X):
        raw = self.predict_raw(X)
        if self.loss_.target == "link":
            return raw.map_blocks(self.loss_.link.h, dtype=np.float64)
        return raw


class DaskSelectiveRanker(_DaskSelectiveModel):
    """Learning to rank with a ``ListwiseLoss`` (default) or ``PairwiseLoss`` on Dask collections (a
    ``SelectiveLoss`` is accepted too: pointwise ranking, started from its optimal constant).

    ``fit(X, y, qid=None, group=None, sample_weight=None)``: ``qid`` is a row-aligned query id (rows
    of a query consecutive, no query spanning two partitions: see ``partition_by_query``), or
    ``group`` holds group sizes with one partition per X partition (``lightgbm.dask``'s convention).
    A split group raises a ``ValueError`` before training. ``sample_weight`` is per row and needs
    ``backend="lightgbm"``: ``xgboost.dask`` does not take weights with query ids. ``predict(X)``
    returns a Dask array of ranking scores.
    """

    _loss_types = (ListwiseLoss, PairwiseLoss, SelectiveLoss)
    _default_loss = ListwiseLoss

    def fit(self, X, y, qid=None, group=None, sample_weight=None):
        self.loss_ = self._check()
        X = _as_dask_array(X, "X", ndim=(2,))
        y = _as_dask_array(y, "y", rows_like=X).astype(np.float64)
        if (qid is None) == (group is None):
            raise ValueError("pass exactly one of qid (a query id per row) and group (group sizes per partition)")
        if group is not None:
            qid = _qid_from_group(group, X.chunks[0])
        qid = _as_dask_array(qid, "qid", rows_like=X)
        sizes = check_query_partitions(qid)
        weight = _as_weights(sample_weight, "sample_weight", X)
        if weight is not None and self.backend == "xgboost":
            raise ValueError(
                "sample_weight with query groups needs backend='lightgbm': xgboost.dask does not take "
                "weights together with qid"
            )
        init = init_score(self.loss_, y, weight) if self.init_score else 0.0  # 0 for group losses
        if self.backend == "xgboost":
            return self._fit(X, y, qid=qid, init=init)
        return self._fit(X, y, weight=weight, group_sizes=sizes, init=init)

    def predict(self, X):
        return self.predict_raw(X)


def _softmax_rows(phi):
    phi = phi - phi.max(axis=1, keepdims=True)
    e = np.exp(phi)
    return e / e.sum(axis=1, keepdims=True)


def _encode_classes(block, classes):
    return np.searchsorted(classes, block)


def _decode_classes(raw, classes):
    # phi is increasing, so the most probable class is the one of the largest raw score
    return classes[np.argmax(raw, axis=1)]


class DaskSelectiveClassifier(_DaskSelectiveModel):
    """Multi-class classification with a ``MulticlassLoss`` on Dask collections (default: softmax
    cross-entropy).

    ``fit(X, y, sample_weight=None)``: ``y`` holds class labels (any sortable values, encoded as
    ``classes_``); the engine trains k outputs (``num_class=k``) from the per-class constants of the
    whole dataset's weighted class frequencies. ``predict_proba(X)`` is
    ``softmax(phi(z))`` per row, ``predict(X)`` the most probable class; both are Dask arrays.
    """

    _loss_types = (MulticlassLoss,)
    _default_loss = MulticlassLoss

    def fit(self, X, y, sample_weight=None):
        self.loss_ = self._check()
        X = _as_dask_array(X, "X", ndim=(2,))
        y = _as_dask_array(y, "y", rows_like=X, numeric=False)
        weight = _as_weights(sample_weight, "sample_weight", X)
        self.classes_ = np.asarray(da.unique(y).compute())
        k = self.classes_.size
        if k < 2:
            raise ValueError(f"y must hold at least 2 classes, got {k}")
        # persisted: the codes feed several graphs (the class counts, then the engine's data)
        codes = _get_client(self.client).persist(y.map_blocks(_encode_classes, self.classes_, dtype=np.int64))
        self.n_classes_ = k
        init = init_score(self.loss_, codes, weight, n_classes=k) if self.init_score else np.zeros(k)
        return self._fit(X, codes, weight=weight, n_outputs=k, init=init)

    def predict_proba(self, X):
        raw = self.predict_raw(X)
        phi = raw.map_blocks(self.loss_.transform.h, dtype=np.float64)
        return phi.map_blocks(_softmax_rows, dtype=np.float64)

    def predict(self, X):
        return self.predict_raw(X).map_blocks(
            _decode_classes, self.classes_, drop_axis=1, dtype=self.classes_.dtype
        )
