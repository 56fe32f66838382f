"""``selboost.xgboost_train``: XGBoost's training loop with the margins kept here, not read from XGBoost.

``xgboost.train(obj=f)`` asks XGBoost for the margins before every round
(``Booster.predict(output_margin=True, training=True)``), and that prediction always ends in host memory,
even with ``device="cuda"``: on a GPU each round copies the margins to the host and the objective
copies them back. This loop keeps its own margins instead: it starts from XGBoost's (one prediction),
computes each round's gradients from them (the CPU kernels, or ``selboost.cuda``'s on the GPU, where the
margins are a device array), hands them to ``Booster.boost(dtrain, i, grad=, hess=)`` and adds the new
round's trees, ``inplace_predict(X, iteration_range=(r, r + 1), base_margin=0)``: with a zero base margin
that is each row's leaf value as XGBoost stores it, and adding it in float32 is what XGBoost's
training cache does, so the margins equal XGBoost's bit for bit and the model is ``xgboost.train``'s,
tree for tree. The rest (evaluation sets, custom metrics, early stopping, callbacks, continuation) is
``xgboost.train``'s own machinery (``CallbackContainer``), driven the same way.

Only the XGBoost engine imports this module (``selboost.engines.xgboost``).
"""

from __future__ import annotations

import json
import warnings
import weakref

import numpy as np

from selboost.engines import get_engine
from selboost.losses import _BoundLoss, check_loss
from selboost.metrics import _Metric

__all__ = ["xgboost_train"]


def xgboost_train(params, dtrain, num_boost_round=10, *, loss, X=None, evals=(), custom_metric=None, maximize=None,
          early_stopping_rounds=None, evals_result=None, verbose_eval=True, xgb_model=None, callbacks=None):
    """Train an XGBoost booster on a selboost loss, keeping the margins here (on the GPU with
    ``device="cuda"``); ``xgboost.train``'s signature, with ``loss`` for ``obj`` and ``X`` added.

    Parameters
    ----------
    params : dict
        XGBoost's parameters, as for ``xgboost.train``. ``device="cuda"`` computes the gradients on
        the GPU (``selboost.cuda``; needs the ``gpu`` extra) and, with ``X``, keeps the margins there;
        without a usable GPU it raises a ValueError (where ``xgboost.train`` falls back to the CPU).
    dtrain : xgboost.DMatrix
        The training data (a ``QuantileDMatrix`` too). Labels, groups, weights and the base margin are
        read from it as ``xgboost_objective`` reads them.
    num_boost_round : int, default 10
        Boosting rounds.
    loss : selboost loss or bound loss
        A loss (``SelectiveLoss``, ``ListwiseLoss``, ``PairwiseLoss``, ``MulticlassLoss``; bound to
        ``dtrain``'s labels, groups and weights here) or a loss already bound to ``dtrain``'s rows (for
        labels or weights a DMatrix cannot hold).
    X : array-like, optional
        ``dtrain``'s features, row for row: each round adds the new trees' prediction on X to the
        margins. On the GPU pass a CuPy array (a NumPy array is copied to the device once; a sparse
        matrix is not, and the margins are then read from XGBoost as without X). Without X, or for a
        booster whose rounds do not simply add trees (``dart``, ``gblinear``, ``num_parallel_tree > 1``,
        ``process_type="update"``), the margins are XGBoost's own, read every round as ``xgboost.train``
        reads them. On the CPU that read is a copy of XGBoost's cache and is cheaper than predicting the
        new trees (``benchmarks/RESULTS.md``), so X is for the GPU; the model is the same either way.
        Before the first round X is compared once with dtrain's entries (``DMatrix.get_data``, a host
        copy): an X that does not hold dtrain's rows (another shape, rows, order, value or missing value;
        for a ``QuantileDMatrix``, another histogram bin) raises a ValueError. After the first round the
        margins are compared once with XGBoost's too.
    evals : sequence of (DMatrix, str)
        Evaluation sets, as for ``xgboost.train``.
    custom_metric : selboost metric or callable, optional
        A selboost metric (``NDCG``, ``RegionError``, ``LossMetric``, or ``xgboost_metric(...)``), or
        XGBoost's ``f(margins, dmatrix) -> (name, value)``. It sees raw margins.
    maximize : bool, optional
        Whether early stopping maximises the last metric; None: the selboost metric's own direction,
        else XGBoost's rule (by the metric's name).
    early_stopping_rounds : int, optional
        Stop when the last metric on the last evaluation set has not improved for this many rounds
        (``xgboost.callback.EarlyStopping``; the booster keeps every round, ``best_iteration`` is set).
    evals_result : dict, optional
        Filled with the metrics' history, ``{set name: {metric name: [values]}}``.
    verbose_eval : bool or int, default True
        Print the metrics every round (or every ``verbose_eval`` rounds).
    xgb_model : xgboost.Booster, str, path or bytearray, optional
        A model to continue: the margins start from its predictions (and the DMatrix's base margin).
    callbacks : list of xgboost.callback.TrainingCallback, optional
        XGBoost's callbacks, run by ``xgboost.callback.CallbackContainer`` as ``xgboost.train`` runs them.

    Returns
    -------
    xgboost.Booster
        The trained booster (its training caches released, as ``xgboost.train`` returns it).
    """
    import xgboost as xgb
    from xgboost.callback import CallbackContainer, EarlyStopping, EvaluationMonitor

    # xgboost.train's rule below: a QuantileDMatrix must be built with the training data as reference
    ref_types = tuple(getattr(xgb.core, name) for name in ("_RefMixIn",) if hasattr(xgb.core, name))
    evals = list(evals) if evals else []
    for data, _ in evals:
        if not isinstance(data, xgb.DMatrix):
            raise TypeError(f"evals must hold (DMatrix, name) pairs, got {type(data).__name__}")
        if isinstance(data, ref_types) and data.ref is not weakref.ref(dtrain) and data is not dtrain:
            raise ValueError("Training dataset should be used as a reference when constructing the "
                             "`QuantileDMatrix` for evaluation.")
    metric, higher_is_better = _custom_metric(custom_metric)
    if maximize is None:
        maximize = higher_is_better
    callbacks = [] if callbacks is None else list(callbacks)
    if verbose_eval:
        callbacks.append(EvaluationMonitor(period=1 if verbose_eval is True else int(verbose_eval)))
    if early_stopping_rounds:
        callbacks.append(EarlyStopping(rounds=early_stopping_rounds, maximize=maximize))
    container = CallbackContainer(callbacks, metric=metric, output_margin=True)

    _require_asked_gpu(params)
    booster = xgb.Booster(params, [dtrain] + [data for data, _ in evals], model_file=xgb_model)
    booster = container.before_training(booster)
    margins = margin_keeper(booster, dtrain, loss, X)
    booster = boost_rounds(booster, dtrain, margins, num_boost_round, container, evals)
    if evals_result is not None:
        evals_result.update(container.history)
    return booster.reset()


def _require_asked_gpu(params):
    """A ValueError when ``params`` ask for a GPU (``device="cuda"``, ``"cuda:<n>"``, ``"gpu"``) that XGBoost
    cannot use here: XGBoost would fall back to the CPU with warnings of its own, and the gradients and
    margins meant for the device would be computed on the host."""
    device = str(dict(params).get("device", "cpu")).lower()
    if device.startswith(("cuda", "gpu")):
        problem = get_engine("xgboost").gpu_problem("cuda")
        if problem is not None:
            raise ValueError(f"params['device']={dict(params)['device']!r} needs a usable CUDA GPU: {problem}; "
                             "use device='cpu'")


def boost_rounds(booster, dtrain, margins, num_boost_round, container, evals):
    """``xgboost.train``'s loop with ``margins.boost`` for ``Booster.update``; returns the booster
    after ``container.after_training``."""
    for i in range(num_boost_round):
        if container.before_iteration(booster, i, dtrain, evals):
            break
        margins.boost(booster, dtrain, i)
        if container.after_iteration(booster, i, dtrain, evals):
            break
    return container.after_training(booster)


def _custom_metric(custom_metric):
    """(XGBoost's custom-metric callable or None, the metric's higher_is_better or None)."""
    if custom_metric is None:
        return None, None
    if isinstance(custom_metric, _Metric):
        return get_engine("xgboost").metric(custom_metric), custom_metric.higher_is_better
    if isinstance(custom_metric, get_engine("xgboost").metric_class):
        return custom_metric, custom_metric.metric.higher_is_better
    if callable(custom_metric):
        return custom_metric, None
    raise TypeError(f"custom_metric must be a selboost metric or a callable, got {custom_metric!r}")


# ---------------------------------------------------------------- margins


def _config(booster):
    return json.loads(booster.save_config())["learner"]


def adds_trees(booster):
    """Whether every round adds its trees' leaf values to each row's margin and nothing else: a gbtree
    with one tree per output per round, growing new trees. (``dart`` drops trees from the training
    margins; with several parallel trees XGBoost sums them onto the margin one by one, which a
    prediction of the round, summed first, does not reproduce to the last bit.)"""
    gbm = _config(booster)["gradient_booster"]
    return (gbm["name"] == "gbtree" and int(gbm["gbtree_model_param"]["num_parallel_tree"]) == 1
            and gbm["gbtree_train_param"]["process_type"] == "default")


def booster_device(booster):
    """"cuda" when the booster trains on a GPU, else "cpu" (XGBoost's own setting, after its fallback)."""
    return "cuda" if _config(booster)["generic_param"]["device"].startswith("cuda") else "cpu"


def _bind(dtrain, loss, device, n_classes):
    """The objective computing the gradients on ``device`` and its binding for ``dtrain``."""
    if isinstance(loss, _BoundLoss):
        objective = get_engine("xgboost").objective(loss.spec, device=device)
        objective.register(dtrain, loss)
    else:
        objective = get_engine("xgboost").objective(check_loss(loss), device=device)
        objective.bind(dtrain, n_classes)
    return objective, objective.binding(dtrain)


def margin_keeper(booster, dtrain, loss, X=None, gradient_device=None):
    """The margins of one training run: ``TreeMargins`` (host or device) when X is given and the
    booster adds trees, else ``EngineMargins``. ``gradient_device`` defaults to the booster's."""
    device = booster_device(booster) if gradient_device is None else gradient_device
    # XGBoost's starting margins (base_score or the base margin, plus xgb_model's trees): the first
    # thing Booster.boost would compute, so the run starts exactly where xgboost.train's would
    initial = booster.predict(dtrain, output_margin=True, training=True)
    objective, binding = _bind(dtrain, loss, device, initial.shape[1] if initial.ndim == 2 else None)
    if initial.shape != tuple(binding.bound.shape):
        raise ValueError(
            f"XGBoost's margins have shape {initial.shape}, the loss is bound to {tuple(binding.bound.shape)}: "
            "for MulticlassLoss set num_class, for the other losses do not"
        )
    if X is None:
        return EngineMargins(objective, binding)
    if len(np.shape(X)) != 2 or tuple(np.shape(X)) != (dtrain.num_row(), dtrain.num_col()):
        raise ValueError(f"X has shape {tuple(np.shape(X))}, dtrain {dtrain.num_row()} rows and {dtrain.num_col()} "
                         "columns: pass dtrain's features, row for row, or X=None")
    if not adds_trees(booster):
        warnings.warn("this booster's rounds do not only add trees (dart, gblinear, num_parallel_tree > 1 "
                      "or process_type='update'): the margins are read from XGBoost every round", stacklevel=3)
        return EngineMargins(objective, binding)
    if device == "cuda" and _is_sparse(X):
        return EngineMargins(objective, binding)  # XGBoost predicts device CSR only from cuDF/CuPy objects
    check_features(X, dtrain)
    if device == "cuda":
        host_booster = booster_device(booster) == "cpu"
        if not host_booster and _cupy() is None:
            return EngineMargins(objective, binding)  # XGBoost returns device predictions only as CuPy
        return DeviceMargins.create(objective, binding, initial, X, host_booster=host_booster)
    if hasattr(X, "__cuda_array_interface__"):
        raise TypeError("X is on the GPU but the booster trains on the CPU: pass a host array")
    return TreeMargins(objective, binding, initial, X)


def check_features(X, dtrain):
    """A ValueError unless X holds dtrain's entries: a value wherever dtrain stores one and NaN where it
    stores none (sparse X: no entry), equal in float32 for a DMatrix, in the same histogram bin for a
    ``QuantileDMatrix`` (which keeps only the bins; values in one bin take the same branch at every
    split). Each round's trees are predicted on X, so any other X would give other margins than
    XGBoost's (a missing value set or cleared, a row moved) and so another model. One comparison,
    before the first round, on a host copy of dtrain's entries (``DMatrix.get_data``)."""
    import xgboost as xgb

    try:
        stored = dtrain.get_data()
    except xgb.core.XGBoostError:  # pragma: no cover - a DMatrix kind that cannot give its entries back
        return
    stored.sort_indices()
    got = _stored_form(X, stored.shape)
    rows = np.repeat(np.arange(stored.shape[0]), np.diff(stored.indptr))
    if not np.array_equal(stored.indptr, got.indptr):
        row, what = int(np.flatnonzero(np.diff(stored.indptr) != np.diff(got.indptr))[0]), "its missing values"
    elif not np.array_equal(stored.indices, got.indices):
        row, what = int(rows[np.flatnonzero(stored.indices != got.indices)[0]]), "its missing values"
    else:
        expected, given, what = stored.data, got.data, "the value"
        if isinstance(dtrain, xgb.QuantileDMatrix):
            pointer, cuts = dtrain.get_quantile_cut()
            expected, given = _bins(expected, stored.indices, pointer, cuts), _bins(given, got.indices, pointer, cuts)
            what = "the histogram bin"
        differ = np.flatnonzero(expected != given)
        if not differ.size:
            return
        row, what = int(rows[differ[0]]), f"{what} in column {int(stored.indices[differ[0]])}"
    raise ValueError(f"X does not hold dtrain's rows: row {row} of X differs from dtrain's ({what}); pass the same "
                     "rows in the same order, with missing values as NaN (or X=None)")


def _stored_form(X, shape):
    """X's entries as a DMatrix stores them: a float32 CSR matrix without the missing (NaN) values, a
    pandas categorical column as its category codes."""
    import scipy.sparse

    if hasattr(X, "to_pandas"):  # cuDF
        X = X.to_pandas()
    if scipy.sparse.issparse(X):
        coo = scipy.sparse.coo_matrix(X, dtype=np.float32)
        keep = ~np.isnan(coo.data)
        csr = scipy.sparse.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=shape)
    else:
        if hasattr(X, "dtypes") and hasattr(X, "columns"):  # pandas
            X = np.column_stack([_column_values(X.iloc[:, j]) for j in range(X.shape[1])])
        dense = np.asarray(_to_host(X), dtype=np.float32)
        present = ~np.isnan(dense)
        csr = scipy.sparse.csr_matrix((dense[present], np.nonzero(present)[1],
                                       np.concatenate([[0], np.cumsum(present.sum(axis=1))])), shape=shape)
    csr.sort_indices()
    return csr


def _column_values(column):
    """A pandas column as float32, a categorical one as its codes (NaN for a missing category)."""
    if hasattr(column, "cat"):
        codes = column.cat.codes.to_numpy()
        return np.where(codes < 0, np.nan, codes).astype(np.float32)
    return column.to_numpy(dtype=np.float32, na_value=np.nan)


def _bins(values, columns, pointer, cuts):
    """Each entry's histogram bin in a QuantileDMatrix: the cut values of its column above which it lies."""
    bins = np.empty(values.size, dtype=np.int64)
    for j in range(pointer.size - 1):
        at = columns == j
        bins[at] = np.searchsorted(cuts[pointer[j]:pointer[j + 1]], values[at], side="right")
    return bins


class EngineMargins:
    """XGBoost's own margins, read every round (``predict(training=True)``), as ``xgboost.train`` does."""

    def __init__(self, objective, binding):
        self.objective, self.binding = objective, binding

    def boost(self, booster, dtrain, iteration):
        margins = booster.predict(dtrain, output_margin=True, training=True)
        grad, hess = self.objective.gradient_step(self.binding, margins)
        booster.boost(dtrain, iteration, grad=grad, hess=hess)


class TreeMargins:
    """Margins kept in a host float32 array and advanced by each round's trees."""

    def __init__(self, objective, binding, initial, X):
        self.objective, self.binding = objective, binding
        self.margins = np.array(initial, dtype=np.float32, order="C")
        self.X = X
        self.zeros = np.zeros_like(self.margins)
        self.checked = False

    def gradients(self):
        return self.objective.gradient_step(self.binding, self.margins)

    def boost(self, booster, dtrain, iteration):
        begin = booster.num_boosted_rounds()
        grad, hess = self.gradients()
        booster.boost(dtrain, iteration, grad=grad, hess=hess)
        end = booster.num_boosted_rounds()
        if end != begin + 1:  # pragma: no cover - adds_trees() excludes the boosters that do this
            raise RuntimeError(f"a round took the model from {begin} to {end} rounds")
        # base_margin=0: the trees alone (without it the prediction adds base_score, and subtracting it
        # again is not exact in float32)
        delta = booster.inplace_predict(self.X, iteration_range=(begin, end), predict_type="margin",
                                        base_margin=self.zeros)
        self.add(delta)
        if not self.checked:
            self.check(booster, dtrain)

    def add(self, delta):
        self.margins += delta

    def host_margins(self):
        return self.margins

    def check(self, booster, dtrain):
        """Once, after the first round: the margins must be XGBoost's (X holds dtrain's rows)."""
        self.checked = True
        expected = booster.predict(dtrain, output_margin=True, training=True)
        got = self.host_margins()
        # bit for bit where XGBoost does what we do; the tolerance only spares a device's rounding
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-5 * (1.0 + float(np.max(np.abs(expected))))):
            worst = int(np.argmax(np.abs(got - expected)))
            raise ValueError(
                "X does not hold dtrain's rows: after one round the margins predicted on X differ from "
                f"XGBoost's (row {np.unravel_index(worst, got.shape)[0]}: {got.flat[worst]!r} against "
                f"{expected.flat[worst]!r}); pass the same rows in the same order, with missing values as NaN"
            )


class DeviceMargins(TreeMargins):
    """Margins kept in a float32 device array (CuPy, or a Numba device array without CuPy): the
    gradients are computed there by ``selboost.cuda`` and handed to XGBoost as device arrays, and each
    round's trees are predicted on device-resident X, so no margin crosses to the host.

    ``host_booster=True`` is a CPU booster fed from device gradients (copied to the host): the device
    bookkeeping under Numba's CUDA simulator, where XGBoost cannot run on a device."""

    @classmethod
    def create(cls, objective, binding, initial, X, host_booster=False):
        from selboost import cuda

        cupy = _cupy()
        self = cls.__new__(cls)
        self.objective, self.binding = objective, binding
        self.cupy = cupy
        self.host_booster = host_booster
        self.checked = False
        initial = np.ascontiguousarray(initial, dtype=np.float32)
        if cupy is not None:
            self.margins = cupy.asarray(initial)
        else:
            self.margins = cuda.cuda.to_device(initial)
        if host_booster:
            if hasattr(X, "__cuda_array_interface__"):
                raise TypeError("X is on the GPU but the booster trains on the CPU: pass a host array")
            self.X, self.zeros = X, np.zeros_like(initial)
        else:
            self.X = _device_features(cupy, X)
            self.zeros = cupy.zeros_like(self.margins)
        return self

    def gradients(self):
        grad, hess = self.objective.gradient_step(self.binding, self.margins)
        if self.host_booster:
            return _to_host(grad), _to_host(hess)
        return grad, hess

    def add(self, delta):
        from selboost import cuda

        if self.cupy is not None:
            self.margins += self.cupy.asarray(delta)
        else:
            cuda.add_into(self.margins, delta)

    def host_margins(self):
        return _to_host(self.margins)


def _cupy():
    from selboost import cuda

    return cuda._cupy()


def _is_sparse(X):
    import scipy.sparse

    return scipy.sparse.issparse(X)


def _to_host(array):
    if hasattr(array, "copy_to_host"):
        return array.copy_to_host()
    if hasattr(array, "get"):
        return array.get()
    return np.asarray(array)


def _device_features(cupy, X):
    """X as a C-contiguous float32 CuPy array (XGBoost's inplace prediction reads device arrays)."""
    if hasattr(X, "__cuda_array_interface__"):
        return cupy.ascontiguousarray(cupy.asarray(X), dtype=cupy.float32)
    return cupy.asarray(np.ascontiguousarray(X, dtype=np.float32))

