"""Boundary checks: every public entry point validates here so that the kernels can assume valid input."""

from __future__ import annotations

import numpy as np


def as_float_array(values, name: str, *, ndim: int | tuple[int, ...] = 1, allow_empty: bool = False,
                   keep_float32: bool = False, check_finite: bool = True):
    """A float64 array (float32 kept as it is with ``keep_float32``), or a TypeError / ValueError naming
    ``name``.

    Rejects non-numeric dtypes (strings, objects, complex, bool), the wrong number of dimensions,
    empty input and (unless ``check_finite`` is False: the caller checks) NaN or infinite values.
    """
    if values is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimension(s), got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    dtype = np.float32 if keep_float32 and array.dtype == np.float32 else np.float64
    array = np.ascontiguousarray(array, dtype=dtype)
    if check_finite and not np.isfinite(array).all():
        raise_nonfinite(array, name)
    return array


def check_feature_columns(X, name: str = "X"):
    """A TypeError naming the columns of a DataFrame (pandas or Dask) that do not hold numbers.

    Categorical columns are named apart: the engines' own estimators split them as categories, while
    selboost's estimators take numeric features only, and reading a category as its value or code would
    split it as a number without a word. The raw objectives (``xgboost_objective``,
    ``lightgbm_objective``) train on the engines' own categorical data."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns") or not hasattr(dtypes, "items"):
        return
    categorical = [column for column, dtype in dtypes.items() if getattr(dtype, "name", "") == "category"]
    if categorical:
        raise TypeError(
            f"{name}: column(s) {categorical} are categorical, which selboost's estimators do not split as "
            "categories: encode them as numbers first (e.g. one-hot, pandas.get_dummies(X, columns=[...])), or "
            "train the engine on its categorical data with a selboost objective (xgboost.train(..., "
            "obj=selboost.xgboost_objective(loss)) on a DMatrix with enable_categorical=True, or "
            "lightgbm.train with objective=selboost.lightgbm_objective(loss))")
    if not type(X).__module__.startswith("pandas"):
        return  # a Dask frame: its array's dtype is checked without computing the columns
    unreadable = []
    for column, dtype in dtypes.items():
        if getattr(dtype, "kind", "O") not in "iufb":
            try:  # an object column of numbers reads as numbers
                np.asarray(X[column], dtype=np.float64)
            except (TypeError, ValueError):
                unreadable.append(column)
    if unreadable:
        raise TypeError(f"{name}: column(s) {unreadable} do not hold numbers: encode them as numbers first")


def raise_nonfinite(array, name: str):
    """The ValueError for an array holding NaN or infinite values."""
    bad = np.flatnonzero(~np.isfinite(array.ravel()))
    raise ValueError(f"{name} must be finite: {bad.size} NaN or infinite value(s), first at flat index {bad[0]}")


def check_length(array, n: int, name: str, what: str = "rows"):
    if array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} {what}, expected {n}")


def sample_weights(sample_weight, n: int, name: str = "sample_weight"):
    """Validated non-negative float64 weights of length n, or an empty array meaning 'all ones'."""
    if sample_weight is None:
        return np.empty(0, dtype=np.float64)
    weight = as_float_array(sample_weight, name)
    check_length(weight, n, name)
    if (weight < 0).any():
        raise ValueError(f"{name} must be non-negative, found {weight.min()}")
    if not (weight > 0).any():
        raise ValueError(f"{name} must not be all zero")
    return weight


def row_weights(sample_weight, group_weight, pointer, n_rows: int):
    """Validated per-row weights: each row's ``sample_weight`` times the ``group_weight`` of its query
    group (``pointer`` from ``group_pointer``); an empty array, meaning all ones, when neither is given."""
    row = sample_weights(sample_weight, n_rows)
    if group_weight is None:
        return row
    per_group = sample_weights(group_weight, pointer.size - 1, "group_weight")
    expanded = np.repeat(per_group, np.diff(pointer))
    return expanded * row if row.size else expanded


def group_pointer(group, n_rows: int, name: str = "group"):
    """Group sizes (consecutive rows) -> an int64 pointer array [0, s0, s0 + s1, ..., n_rows]."""
    if group is None:
        raise ValueError(f"{name} (the sizes of the consecutive query groups) is required")
    sizes = np.asarray(group)
    if sizes.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold integer group sizes, got dtype {sizes.dtype}")
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array of group sizes, got shape {sizes.shape}")
    if sizes.dtype.kind == "f":
        if not np.isfinite(sizes).all() or (sizes != np.round(sizes)).any():
            raise ValueError(f"{name} must hold whole numbers, got {sizes[:5]}")
    sizes = sizes.astype(np.int64)
    if (sizes <= 0).any():
        raise ValueError(f"{name} sizes must be positive, found {sizes.min()}")
    total = int(sizes.sum())
    if total != n_rows:
        raise ValueError(f"{name} sizes sum to {total}, but there are {n_rows} rows")
    pointer = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=pointer[1:])
    return pointer


def check_choice(value, name: str, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_hess_min(hess_min):
    if isinstance(hess_min, bool) or not isinstance(hess_min, (int, float, np.floating, np.integer)):
        raise TypeError(f"hess_min must be a number, got {hess_min!r}")
    hess_min = float(hess_min)
    if not (np.isfinite(hess_min) and hess_min >= 0.0):
        raise ValueError(f"hess_min must be finite and >= 0, got {hess_min!r}")
    return hess_min


def check_n_threads(n_threads):
    """The number of threads a kernel runs on: an int >= 1, or -1 for every core this process may use."""
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be an int >= 1 or -1 (every core), got {n_threads!r}")
    if n_threads != -1 and n_threads < 1:
        raise ValueError(f"n_threads must be >= 1 or -1 (every core), got {n_threads!r}")
    return int(n_threads)


def check_query_ids(qid, name: str = "qid"):
    """Per-row query ids as a NumPy array: numeric and finite (a NaN id equals no other, not even
    itself, so it would split its query into groups of its own), or a TypeError / ValueError naming
    ``name``."""
    qid = np.asarray(qid)
    if qid.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numeric query ids, got dtype {qid.dtype}")
    if qid.dtype.kind == "f" and not np.isfinite(qid).all():
        raise_nonfinite(qid, name)
    return qid


#: the largest float32: both engines store labels and weights as float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_storable(values, name: str):
    """A ValueError naming ``name`` when a value is NaN, infinite or beyond float32's range: the engines
    store labels and weights as float32, where such a value becomes infinite (XGBoost refuses it,
    LightGBM clamps it to 1e38)."""
    array = np.asarray(values, dtype=np.float64)
    beyond = ~(np.abs(array) <= FLOAT32_MAX)  # NaN too
    if beyond.any():
        first = int(np.flatnonzero(beyond.ravel())[0])
        raise ValueError(f"{name} must be finite and within float32's range (|value| <= 3.4e38), which the "
                         f"engines store it in: {int(beyond.sum())} value(s) are not, first at flat index "
                         f"{first} ({float(array.ravel()[first])!r})")


def check_gradients_storable(grad, hess, loss, sum_limit=float("inf"), engine=""):
    """A ValueError when a gradient or hessian of ``loss`` is NaN or infinite in the float32 arrays
    handed to an engine, or when the absolute gradients of one output sum beyond ``sum_limit``.

    The kernels compute gradients in float64 from finite scores and labels, so a non-finite one is a
    value beyond float32's range: the engines take float32 gradients, and with an infinite one both
    grow constant trees without a word. ``sum_limit`` is the largest gradient sum the ``engine``'s
    split search handles (XGBoost squares a node's gradient sum in float32, and past that chooses its
    splits from infinite gains); the sum of the absolute gradients bounds every node's. The message
    names what scales the loss (``loss.scale_names``, e.g. a region's ``strength``)."""
    bad = ~(np.isfinite(grad) & np.isfinite(hess))
    fix = f"lower {loss.scale_names}, or rescale the targets"
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{loss!r}: {int(bad.sum())} of {bad.size} gradients or hessians at the start scores exceed "
            f"float32's range (|value| <= 3.4e38), in which the engines take them (first at flat index {first}: "
            f"gradient {float(np.ravel(grad)[first])!r}, hessian {float(np.ravel(hess)[first])!r}): {fix}")
    # per output: each of a multi-class loss's columns grows its own trees
    total = float(np.max(np.abs(grad).sum(axis=0, dtype=np.float64), initial=0.0))
    if total > sum_limit:
        raise ValueError(
            f"{loss!r}: the absolute gradients at the start scores sum to {total:.3g}, beyond {sum_limit:.3g}, the "
            f"most {engine}'s split search can square in float32 (it would choose its splits from infinite "
            f"gains): {fix}")
