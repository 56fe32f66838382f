"""The fitted state of an estimator as JSON data, and back, with no ``pickle``: a model file is data.

``encode`` turns the values an estimator's parameters and fitted attributes hold (numbers, strings,
lists, tuples, dicts, NumPy arrays and scalars, selboost's losses and links) into JSON values; ``decode``
rebuilds them, constructing only the classes of ``_CLASSES`` (selboost's own losses and links, through
their constructors and so through their parameter checks). Anything else is refused with a clear error
on either side: a file naming another class, or holding a malformed value, cannot make ``decode`` run
code.

``seal`` adds a digest of the whole file and ``check_seal`` refuses a file whose content no longer
matches it: the engines' own model loaders trust their input (a LightGBM model text cut short aborts
the interpreter; an XGBoost tree that points to itself crashes ``predict``), and selboost, which wrote
the file, can tell one that is not what it wrote before an engine reads it. The digest is no
signature: it catches a damaged or edited file, not one forged with intent, which ``decode``'s own
checks still stand against.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

#: marks an encoded value that JSON has no type for
_TAG = "__selboost__"


def _classes():
    from selboost import links, losses, regions

    classes = [links.Identity, links.Sigmoid, links.Sinh, links.Exp, links.PiecewiseLinear, links.WeightedSum,
               *losses.LOSSES.values(), regions.RegionLoss]
    return {cls.__name__: cls for cls in classes}


def _encode_float(value):
    if math.isfinite(value):
        return value
    return {_TAG: "float", "value": repr(value)}  # inf, -inf, nan: not JSON numbers


def encode(value):
    """``value`` as JSON data; a TypeError for what cannot be saved (a callable gain, say)."""
    from selboost.links import Link
    from selboost.losses import _Loss

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return _encode_float(float(value))
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU" and not (value.dtype.kind == "O" and all(
                isinstance(item, str) for item in value.ravel())):
            raise TypeError(f"cannot save an array of dtype {value.dtype} in a model file")
        dtype = "object" if value.dtype.kind == "O" else value.dtype.str
        return {_TAG: "ndarray", "dtype": dtype, "shape": list(value.shape),
                "data": [encode(item) for item in value.ravel().tolist()]}
    if isinstance(value, (Link, _Loss)):
        if type(value).__name__ not in _classes():
            raise TypeError(f"cannot save a {type(value).__name__} in a model file")
        params = value.get_params(deep=False)
        if callable(params.get("gain")) and not isinstance(params.get("gain"), str):
            raise TypeError("a loss with a callable gain cannot be saved in a model file: use gain='exponential' "
                            "or 'linear', or pickle the estimator")
        return {_TAG: "object", "class": type(value).__name__, "params": encode(params)}
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {_TAG: "dict", "type": "dict",
                "items": [[encode(key), encode(item)] for key, item in value.items()]}
    raise TypeError(f"cannot save a {type(value).__name__} in a model file")


def _fail(what):
    raise ValueError(f"not a selboost model file: {what}")


def decode(data):
    """The value ``encode`` made of ``data``; a ValueError for anything it could not have made."""
    if data is None or isinstance(data, (bool, str, int)):
        return data
    if isinstance(data, float):
        return data
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict) or set(data) - {_TAG, "dtype", "shape", "data", "class", "params", "items",
                                                   "type", "value"} or _TAG not in data:
        _fail(f"unexpected value {str(data)[:80]!r}")
    kind = data[_TAG]
    if kind == "float":
        if data.get("value") not in ("inf", "-inf", "nan"):
            _fail(f"bad float {data.get('value')!r}")
        return float(data["value"])
    if kind == "tuple":
        return tuple(decode(item) for item in _list(data.get("items")))
    if kind == "dict":
        items = {decode(key) if not isinstance(key, list) else _fail("a list as a key"): decode(item)
                 for key, item in (_pair(entry) for entry in _list(data.get("items")))}
        if data.get("type") != "dict":
            _fail(f"unknown mapping type {data.get('type')!r}")
        return items
    if kind == "ndarray":
        dtype = data.get("dtype")
        if not isinstance(dtype, str):
            _fail("an array without a dtype")
        if dtype == "object":
            values = [decode(item) for item in _list(data.get("data"))]
            if not all(isinstance(item, str) for item in values):
                _fail("an object array that does not hold strings")
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            try:
                numpy_dtype = np.dtype(dtype)
            except TypeError:
                _fail(f"bad dtype {dtype!r}")
            if numpy_dtype.kind not in "biufU":
                _fail(f"dtype {dtype!r} is not allowed")
            array = np.array([decode(item) for item in _list(data.get("data"))], dtype=numpy_dtype)
        shape = _list(data.get("shape"))
        if not all(isinstance(size, int) and size >= 0 for size in shape) or math.prod(shape) != array.size:
            _fail(f"bad array shape {shape!r}")
        return array.reshape(shape)
    if kind == "object":
        cls = _classes().get(data.get("class"))
        if cls is None:
            _fail(f"unknown class {data.get('class')!r} (known: {', '.join(sorted(_classes()))})")
        params = decode(data.get("params"))
        if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
            _fail(f"bad parameters for {data['class']}")
        try:
            return cls(**params)
        except (TypeError, ValueError) as error:
            _fail(f"bad parameters for {data['class']}: {error}")
    _fail(f"unknown value kind {kind!r}")


def _list(value):
    if not isinstance(value, list):
        _fail(f"expected a list, got {str(value)[:80]!r}")
    return value


def _pair(value):
    if not isinstance(value, list) or len(value) != 2:
        _fail(f"expected a [key, value] pair, got {str(value)[:80]!r}")
    return value


def _digest(payload):
    body = {key: value for key, value in payload.items() if key != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def seal(payload):
    """``payload`` (a JSON-ready dict) with ``"digest"``: the SHA-256 of everything else in it."""
    return {**payload, "digest": _digest(payload)}


def check_seal(payload):
    """A ValueError unless ``payload`` holds the digest ``seal`` gave it: the file was damaged or
    edited after it was written."""
    if payload.get("digest") != _digest(payload):
        raise ValueError("its content does not match the digest save_model wrote: the file was damaged or "
                         "edited, and is not loaded (the engines' model loaders can crash on a malformed "
                         "model). Save the model again from the estimator")
