"""Datasets: the data bundled in ``selboost/data`` and a reader for LETOR learning-to-rank files.

- ``load_bundled_sets()`` / ``load_bundled()``: LightGBM's lambdarank example (ranking), as
  ``RankingSet`` objects (``X``, ``y``, ``group``, ``qid``) or as one ``Fold`` with a validation split;
- ``read_letor(path)`` / ``load_folds(directory)``: LETOR files and 5-fold layouts;
  ``split_by_query`` holds out a random share of the queries;
- ``load_bike_sharing()``: UCI Bike Sharing, hourly (regression), as a pandas DataFrame;
- ``load_regression_set(name)``: one of ``REGRESSION_SETS``, regression data whose targets have rare
  extreme values (UCI Forest Fires, UCI Wine Quality red and white, bike sharing's casual rentals), as a
  ``RegressionSet`` (``X``, ``y``, feature names, source and licence).

LETOR lines read ``<relevance> qid:<id> <index>:<value> ... # comment``; the comment is dropped.
Rows of one query may be scattered in a file: they are regrouped by qid (queries in order of first
appearance, rows of a query in file order), so that every query is one consecutive group.

Fold layouts accepted by ``load_folds``:
- ``Fold1`` .. ``Fold5`` directories, each with ``train.txt``, ``vali.txt``, ``test.txt``;
- ``S1.txt`` .. ``S5.txt``, combined as LETOR defines the folds: fold k trains on S_k, S_k+1, S_k+2,
  validates on S_k+3 and tests on S_k+4 (indices mod 5), which rebuilds the official fold files;
- a single directory holding ``train.txt``, ``vali.txt``, ``test.txt`` (one fold).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np
from sklearn.datasets import load_svmlight_file, load_svmlight_files

__all__ = [
    "RankingSet",
    "Fold",
    "load_bundled_sets",
    "read_letor",
    "load_folds",
    "load_bundled",
    "split_by_query",
    "load_bike_sharing",
    "BIKE_SHARING_FEATURES",
    "BIKE_SHARING_TARGETS",
    "BIKE_SHARING_CITATION",
    "RegressionSet",
    "REGRESSION_SETS",
    "load_regression_set",
]


@dataclass(frozen=True)
class RankingSet:
    """Rows grouped by query: ``X`` (n, d) float64, ``y`` relevance (n,), ``group`` sizes, ``qid`` per query."""

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray
    qid: np.ndarray

    def __post_init__(self):
        if self.X.shape[0] != self.y.shape[0] or int(self.group.sum()) != self.y.shape[0]:
            raise ValueError(
                f"RankingSet: X has {self.X.shape[0]} rows, y {self.y.shape[0]}, groups sum to {int(self.group.sum())}"
            )
        if self.qid.shape[0] != self.group.shape[0]:
            raise ValueError(f"RankingSet: {self.qid.shape[0]} qids for {self.group.shape[0]} groups")

    @property
    def n_queries(self) -> int:
        return int(self.group.size)

    @property
    def pointer(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.group)]).astype(np.int64)

    def subset(self, query_index) -> "RankingSet":
        """The queries at positions ``query_index`` (in that order)."""
        query_index = np.asarray(query_index, dtype=np.int64)
        pointer = self.pointer
        rows = np.concatenate([np.arange(pointer[q], pointer[q + 1]) for q in query_index]) if query_index.size else \
            np.empty(0, dtype=np.int64)
        return RankingSet(self.X[rows], self.y[rows], self.group[query_index].copy(), self.qid[query_index].copy())

    def head(self, n_queries) -> "RankingSet":
        return self.subset(np.arange(min(int(n_queries), self.n_queries)))


@dataclass(frozen=True)
class Fold:
    name: str
    train: RankingSet
    valid: RankingSet
    test: RankingSet
    note: str = ""


def _group_by_qid(X, y, qid, source):
    """Regroup rows so that each query is consecutive; returns a RankingSet."""
    if qid.size == 0:
        raise ValueError(f"{source}: no rows")
    unique, first, inverse = np.unique(qid, return_index=True, return_inverse=True)
    order_of_query = np.argsort(first, kind="stable")  # queries in order of first appearance
    rank = np.empty_like(order_of_query)
    rank[order_of_query] = np.arange(order_of_query.size)
    row_order = np.argsort(rank[inverse], kind="stable")
    counts = np.bincount(inverse, minlength=unique.size)[order_of_query]
    return RankingSet(X[row_order], y[row_order], counts.astype(np.int64), unique[order_of_query])


def _check_labels(y, source):
    if not np.isfinite(y).all():
        raise ValueError(f"{source}: relevance labels must be finite")
    if (y < 0).any() or (y != np.round(y)).any():
        bad = y[(y < 0) | (y != np.round(y))][0]
        raise ValueError(f"{source}: relevance labels must be non-negative integers, found {bad!r}")


def _parse_error(path, exc):
    return ValueError(f"{path}: not a LETOR/svmlight file ({exc})")


def read_letor(path, n_features=None) -> RankingSet:
    """Read one LETOR file (``.gz`` allowed) into a ``RankingSet``; every line needs a ``qid:``."""
    return _read_many([path], n_features)[0]


def _read_many(paths, n_features=None):
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"LETOR file not found: {path}")
    try:
        parsed = load_svmlight_files([os.fspath(p) for p in paths], n_features=n_features, query_id=True,
                                     dtype=np.float64)
    except ValueError as exc:
        raise _parse_error(", ".join(map(str, paths)), exc) from exc
    sets = []
    for i, path in enumerate(paths):
        X, y, qid = parsed[3 * i], parsed[3 * i + 1], parsed[3 * i + 2]
        if X.shape[0] == 0:
            raise ValueError(f"{path}: no data rows")
        if (qid == 0).all() and not _has_qid(path):
            raise ValueError(f"{path}: lines have no 'qid:' field, which LETOR files need to group queries")
        _check_labels(y, path)
        sets.append(_group_by_qid(np.asarray(X.todense()), y, qid, path))
    return sets


def _has_qid(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                return "qid:" in line
    return False


def _concat(sets) -> RankingSet:
    return RankingSet(
        np.concatenate([s.X for s in sets]),
        np.concatenate([s.y for s in sets]),
        np.concatenate([s.group for s in sets]),
        np.concatenate([s.qid for s in sets]),
    )


def _find(directory, stem):
    for name in (stem, stem + ".txt", stem + ".txt.gz", stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def load_folds(directory, max_queries=None) -> list[Fold]:
    """Every fold found in ``directory`` (see the module docstring for the layouts).

    ``max_queries`` keeps only the first that many queries of each split (for quick tests).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"not a directory: {directory}")
    fold_dirs = [os.path.join(directory, f"Fold{k}") for k in range(1, 6)]
    s_files = [_find(directory, f"S{k}") for k in range(1, 6)]
    single = [_find(directory, name) for name in ("train", "vali", "test")]
    if all(os.path.isdir(d) and all(_find(d, n) for n in ("train", "vali", "test")) for d in fold_dirs):
        folds = []
        for k, d in enumerate(fold_dirs, start=1):
            train, valid, test = _read_many([_find(d, n) for n in ("train", "vali", "test")])
            folds.append(Fold(f"Fold{k}", train, valid, test, "official train/vali/test files"))
    elif all(s_files):
        parts = _read_many(s_files)
        n_features = max(p.X.shape[1] for p in parts)
        parts = [_pad(p, n_features) for p in parts]
        folds = []
        for k in range(5):
            idx = [(k + j) % 5 for j in range(5)]
            folds.append(Fold(
                f"Fold{k + 1}",
                _concat([parts[i] for i in idx[:3]]),
                parts[idx[3]],
                parts[idx[4]],
                "S{}+S{}+S{} / S{} / S{}".format(*[i + 1 for i in idx]),
            ))
    elif all(single):
        train, valid, test = _read_many(single)
        folds = [Fold(os.path.basename(os.path.normpath(directory)), train, valid, test, "train/vali/test files")]
    else:
        raise ValueError(
            f"{directory}: expected Fold1..Fold5 directories (each with train.txt, vali.txt, "
            "test.txt), or S1.txt..S5.txt, or train.txt/vali.txt/test.txt"
        )
    if max_queries is not None:
        folds = [Fold(f.name, f.train.head(max_queries), f.valid.head(max_queries), f.test.head(max_queries), f.note)
                 for f in folds]
    return folds


def _pad(s: RankingSet, n_features) -> RankingSet:
    if s.X.shape[1] == n_features:
        return s
    X = np.zeros((s.X.shape[0], n_features))
    X[:, : s.X.shape[1]] = s.X
    return RankingSet(X, s.y, s.group, s.qid)


def split_by_query(data: RankingSet, fraction: float, seed: int = 0) -> tuple[RankingSet, RankingSet]:
    """(rest, held-out): ``fraction`` of the queries, drawn at random with ``seed``, held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    n_out = max(1, int(round(fraction * data.n_queries)))
    if n_out >= data.n_queries:
        raise ValueError(f"cannot hold out {n_out} of {data.n_queries} queries")
    held = np.sort(rng.choice(data.n_queries, size=n_out, replace=False))
    rest = np.setdiff1d(np.arange(data.n_queries), held)
    return data.subset(rest), data.subset(held)


def _read_lightgbm_pair(data_handle, query_handle, n_features, source) -> RankingSet:
    X, y = load_svmlight_file(data_handle, n_features=n_features, dtype=np.float64)
    group = np.loadtxt(query_handle, dtype=np.int64, ndmin=1)
    if int(group.sum()) != X.shape[0]:
        raise ValueError(f"{source}: query sizes sum to {int(group.sum())} but there are {X.shape[0]} rows")
    _check_labels(y, source)
    return RankingSet(np.asarray(X.todense()), y, group, np.arange(group.size))


VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 0


def load_bundled_sets() -> dict[str, RankingSet]:
    """The LightGBM lambdarank example bundled in ``selboost/data``: {"train": ..., "test": ...}."""
    root = resources.files("selboost") / "data"
    sets = {}
    for split in ("train", "test"):
        with (root / f"lgb-rank.{split}.gz").open("rb") as raw, gzip.open(raw) as data, \
                (root / f"lgb-rank.{split}.query").open("rb") as query:
            sets[split] = _read_lightgbm_pair(data, query, 300, f"bundled lgb-rank.{split}")
    return sets


def load_bundled(max_queries=None) -> list[Fold]:
    """The LightGBM lambdarank example bundled in ``selboost/data`` as one fold.

    It has no validation file: 20 % of the training queries (seed 0) are held out for validation.
    """
    sets = load_bundled_sets()
    train, valid = split_by_query(sets["train"], VALIDATION_FRACTION, VALIDATION_SEED)
    test = sets["test"]
    if max_queries is not None:
        train, valid, test = train.head(max_queries), valid.head(max_queries), test.head(max_queries)
    note = (f"LightGBM examples/lambdarank (MIT); validation = {VALIDATION_FRACTION:.0%} of the training "
            f"queries held out at random (seed {VALIDATION_SEED})")
    return [Fold("lgb-rank", train, valid, test, note)]


# ---------------------------------------------------------------- UCI Bike Sharing (regression)

BIKE_SHARING_FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit", "temp",
                         "atemp", "hum", "windspeed"]
BIKE_SHARING_TARGETS = ("cnt", "casual")
BIKE_SHARING_CITATION = ("Fanaee-T & Gama, \"Event labeling combining ensemble detectors and background knowledge\", "
                         "Progress in Artificial Intelligence (2013), doi:10.1007/s13748-013-0040-3")


def load_bike_sharing(path=None, max_rows=None):
    """The hourly bike-sharing table as a pandas DataFrame sorted by date and hour (the bundled copy unless
    ``path`` is given); ``max_rows`` keeps the first and the last ``max_rows / 2`` rows. Features:
    ``BIKE_SHARING_FEATURES``; targets ``BIKE_SHARING_TARGETS``; cite ``BIKE_SHARING_CITATION``."""
    import pandas as pd

    if path is None:
        with (resources.files("selboost") / "data" / "bike-sharing-hour.csv.gz").open("rb") as handle:
            frame = pd.read_csv(handle, compression="gzip")
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
        frame = pd.read_csv(path)
    missing = [c for c in ["dteday", *BIKE_SHARING_FEATURES, *BIKE_SHARING_TARGETS] if c not in frame.columns]
    if missing:
        raise ValueError(f"the bike-sharing table lacks the column(s) {missing}")
    frame = frame.sort_values(["dteday", "hr"], kind="stable").reset_index(drop=True)
    if max_rows is not None:
        # keep both sides of a time split: the first and the last max_rows / 2 rows
        half = max(1, max_rows // 2)
        frame = pd.concat([frame.iloc[:half], frame.iloc[-half:]]).reset_index(drop=True)
    return frame


# ---------------------------------------------------------------- regression sets with rare extreme targets


@dataclass(frozen=True)
class RegressionSet:
    """A regression data set: ``X`` (n, d) float64, ``y`` (n,), the feature names, the target's name, and
    where the data come from (``source``: citation and licence)."""

    name: str
    X: np.ndarray
    y: np.ndarray
    features: tuple
    target: str
    source: str

    def __post_init__(self):
        if self.X.shape != (self.y.size, len(self.features)):
            raise ValueError(f"RegressionSet {self.name}: X has shape {self.X.shape} for {self.y.size} targets and "
                             f"{len(self.features)} features")


_UCI_CC_BY = "UCI Machine Learning Repository, CC BY 4.0"
_WINE_CITATION = ("Cortez, Cerdeira, Almeida, Matos & Reis, \"Modeling wine preferences by data mining from "
                  "physicochemical properties\", Decision Support Systems 47(4) (2009), doi:10.1016/j.dss.2009.05.016")
#: name -> (file in selboost/data, CSV separator, target, source)
_REGRESSION_FILES = {
    "forest-fires": ("forestfires.csv.gz", ",", "area", (
        "Cortez & Morais, \"A Data Mining Approach to Predict Forest Fires using Meteorological Data\", EPIA "
        f"2007; {_UCI_CC_BY}")),
    "wine-red": ("winequality-red.csv.gz", ";", "quality", f"{_WINE_CITATION}; {_UCI_CC_BY}"),
    "wine-white": ("winequality-white.csv.gz", ";", "quality", f"{_WINE_CITATION}; {_UCI_CC_BY}"),
}
#: the names ``load_regression_set`` takes
REGRESSION_SETS = ("bike-casual", "forest-fires", "wine-red", "wine-white")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def load_regression_set(name) -> RegressionSet:
    """One of the bundled regression sets whose targets have rare extreme values.

    Parameters
    ----------
    name : str
        One of ``REGRESSION_SETS``:

        - ``"bike-casual"``: UCI Bike Sharing, hourly (``load_bike_sharing``), target ``casual`` (rentals by
          casual users, right-skewed), features ``BIKE_SHARING_FEATURES``; 17,379 rows;
        - ``"forest-fires"``: UCI Forest Fires, target ``area`` (burned hectares: half the fires burn under
          0.6 ha, the largest 1,090 ha), 12 features (``month`` and ``day`` as 1-12 and 1-7, Monday 1); 517
          rows;
        - ``"wine-red"`` / ``"wine-white"``: UCI Wine Quality, target ``quality`` (experts' grade 3-9, the
          poor and the excellent wines rare), 11 physicochemical features; 1,599 and 4,898 rows.

    Returns
    -------
    RegressionSet
        Rows in file order; ``source`` names the citation and the licence (``selboost/data/README.md``).
    """
    import pandas as pd

    if name not in REGRESSION_SETS:
        raise ValueError(f"unknown data set {name!r}: choose from {', '.join(REGRESSION_SETS)}")
    if name == "bike-casual":
        frame = load_bike_sharing()
        return RegressionSet(name, frame[BIKE_SHARING_FEATURES].to_numpy(dtype=np.float64),
                             frame["casual"].to_numpy(dtype=np.float64), tuple(BIKE_SHARING_FEATURES), "casual",
                             f"{BIKE_SHARING_CITATION}; {_UCI_CC_BY}")
    filename, separator, target, source = _REGRESSION_FILES[name]
    with (resources.files("selboost") / "data" / filename).open("rb") as handle:
        frame = pd.read_csv(handle, compression="gzip", sep=separator)
    if name == "forest-fires":
        frame["month"] = frame["month"].map({m: k + 1 for k, m in enumerate(_MONTHS)})
        frame["day"] = frame["day"].map({d: k + 1 for k, d in enumerate(_DAYS)})
    features = tuple(c for c in frame.columns if c != target)
    return RegressionSet(name, frame[list(features)].to_numpy(dtype=np.float64),
                         frame[target].to_numpy(dtype=np.float64), features, target, source)
