"""selboost.datasets: LETOR loading (S-files, Fold directories, qid grouping, comments, bad input) and the
bundled data."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from selboost.datasets import (
    BIKE_SHARING_FEATURES,
    BIKE_SHARING_TARGETS,
    load_bike_sharing,
    load_bundled,
    load_bundled_sets,
    load_folds,
    read_letor,
    split_by_query,
)


def _line(rel, qid, features, comment=True):
    text = f"{rel} qid:{qid} " + " ".join(f"{i + 1}:{v:g}" for i, v in enumerate(features))
    return text + (f" #docid = GX{qid:03d}-{rel} inc = 1 prob = 0.5" if comment else "")


def _write_part(path, qids, rng, rows_per_query=3):
    lines = []
    for q in qids:
        for _ in range(rows_per_query):
            lines.append(_line(int(rng.integers(0, 3)), q, rng.random(4)))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def s_files(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        _write_part(tmp_path / f"S{k}.txt", [10 * k + j for j in range(k + 1)], rng)
    return tmp_path


def test_s_files_make_the_letor_folds(s_files):
    folds = load_folds(s_files)
    assert [f.name for f in folds] == [f"Fold{k}" for k in range(1, 6)]
    parts = [read_letor(s_files / f"S{k}.txt") for k in range(1, 6)]
    # Fold2 trains on S2, S3, S4, validates on S5 and tests on S1
    fold2 = folds[1]
    np.testing.assert_array_equal(fold2.train.qid, np.concatenate([parts[i].qid for i in (1, 2, 3)]))
    np.testing.assert_array_equal(fold2.valid.qid, parts[4].qid)
    np.testing.assert_array_equal(fold2.test.qid, parts[0].qid)
    np.testing.assert_array_equal(fold2.test.X, parts[0].X)
    assert fold2.note == "S2+S3+S4 / S5 / S1"
    for fold in folds:  # every query tested exactly once over the five folds
        assert fold.train.X.shape[1] == 4
    tested = np.sort(np.concatenate([f.test.qid for f in folds]))
    np.testing.assert_array_equal(tested, np.sort(np.concatenate([p.qid for p in parts])))


def test_fold_directories(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(1, 6):
        d = tmp_path / f"Fold{k}"
        d.mkdir()
        for j, name in enumerate(("train", "vali", "test")):
            _write_part(d / f"{name}.txt", [100 * k + 10 * j + i for i in range(2)], rng)
    folds = load_folds(tmp_path)
    assert len(folds) == 5
    assert folds[2].valid.qid.tolist() == [310, 311]
    assert folds[2].note == "official train/vali/test files"
    one = load_folds(tmp_path / "Fold4")
    assert len(one) == 1 and one[0].test.qid.tolist() == [420, 421]


def test_rows_are_grouped_by_qid_and_comments_dropped(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join([
        _line(2, 7, [0.1, 0.2]),
        _line(0, 3, [0.3, 0.4]),
        _line(1, 7, [0.5, 0.6]),
        "# a comment line",
        _line(0, 3, [0.7, 0.8]),
        _line(1, 9, [0.9, 1.0], comment=False),
    ]) + "\n")
    data = read_letor(path)
    assert data.qid.tolist() == [7, 3, 9]  # order of first appearance
    assert data.group.tolist() == [2, 2, 1]
    np.testing.assert_array_equal(data.y, [2, 1, 0, 0, 1])
    np.testing.assert_allclose(data.X[:, 0], [0.1, 0.5, 0.3, 0.7, 0.9])
    sub = data.subset([2, 0])
    assert sub.qid.tolist() == [9, 7] and sub.group.tolist() == [1, 2]
    np.testing.assert_array_equal(sub.y, [1, 2, 1])


def test_gzip_file(tmp_path):
    path = tmp_path / "S.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(_line(1, 1, [0.5]) + "\n" + _line(0, 1, [0.25]) + "\n")
    assert read_letor(path).group.tolist() == [2]


@pytest.mark.parametrize("content, message", [
    ("1 1:0.5 2:0.25\n0 1:0.1 2:0.2\n", "qid"),
    ("1 qid:1 1:abc\n", "not a LETOR/svmlight file"),
    ("-1 qid:1 1:0.5\n", "non-negative integers"),
    ("1.5 qid:1 1:0.5\n", "non-negative integers"),
])
def test_bad_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_letor(path)


def test_bad_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_folds(tmp_path / "missing")
    (tmp_path / "S1.txt").write_text(_line(1, 1, [0.5]) + "\n")
    with pytest.raises(ValueError, match="Fold1..Fold5"):
        load_folds(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_letor(tmp_path / "S9.txt")


def test_bundled_data_and_validation_split():
    (fold,) = load_bundled()
    assert fold.train.n_queries + fold.valid.n_queries == 201
    assert fold.train.X.shape[0] + fold.valid.X.shape[0] == 3005
    assert fold.test.n_queries == 50 and fold.test.X.shape == (768, 300)
    assert not set(fold.train.qid) & set(fold.valid.qid)
    again = load_bundled()[0]
    np.testing.assert_array_equal(fold.valid.qid, again.valid.qid)  # fixed seed
    small = load_bundled(max_queries=5)[0]
    assert small.train.n_queries == small.valid.n_queries == small.test.n_queries == 5
    with pytest.raises(ValueError, match="fraction"):
        split_by_query(fold.test, 1.5)


def test_bundled_sets():
    sets = load_bundled_sets()
    assert set(sets) == {"train", "test"}
    train = sets["train"]
    assert train.X.shape == (3005, 300) and train.n_queries == 201
    assert train.pointer[-1] == train.y.size and train.group.sum() == train.y.size
    assert set(np.unique(train.y)) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_bike_sharing(tmp_path):
    frame = load_bike_sharing()
    assert len(frame) == 17379
    assert set(BIKE_SHARING_FEATURES) | set(BIKE_SHARING_TARGETS) <= set(frame.columns)
    assert frame["dteday"].is_monotonic_increasing
    small = load_bike_sharing(max_rows=10)
    assert len(small) == 10 and small["dteday"].iloc[0] == frame["dteday"].iloc[0]
    assert small["dteday"].iloc[-1] == frame["dteday"].iloc[-1]
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_bike_sharing(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("dteday,hr\n2011-01-01,0\n")
    with pytest.raises(ValueError, match="lacks the column"):
        load_bike_sharing(tmp_path / "bad.csv")


def test_the_library_does_not_import_the_benchmark():
    import subprocess
    import sys

    code = ("import sys, selboost, selboost.datasets, selboost.metrics, selboost.estimators, selboost.objectives, "
            "selboost.engines.xgboost, selboost.engines.lightgbm; "
            "print(sorted(m for m in sys.modules if m.startswith('selboost.bench') or m == 'selboost.cli'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("ties", [False, True])
def test_signed_rank_p_is_scipys_exact_and_permutation_p(ties):
    """The benchmarks' paired test equals SciPy's ``wilcoxon`` where SciPy is exact: without ties (its
    exact method) and, with ties or zeros, up to 13 differences (its permutation test enumerates every
    sign pattern); a large sample takes SciPy's normal approximation."""
    from scipy import stats

    from selboost.bench._stats import EXACT_UP_TO, signed_rank_p

    rng = np.random.default_rng(3)
    for n in range(1, 14):
        d = rng.integers(-3, 4, n) / 4 if ties else rng.normal(size=n)
        expected = 1.0 if not np.any(d) else stats.wilcoxon(d, zero_method="wilcox").pvalue
        assert signed_rank_p(d) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    d = rng.integers(-3, 4, EXACT_UP_TO + 40) / 4 if ties else rng.normal(size=EXACT_UP_TO + 40)
    expected = stats.wilcoxon(d, zero_method="wilcox", method="asymptotic").pvalue
    assert signed_rank_p(d) == pytest.approx(expected, rel=1e-12)
    assert signed_rank_p(np.zeros(4)) == 1.0
