"""selboost on Dask with workers in separate processes: evaluation and early stopping run on the
workers, and match the single-machine estimators (one 2-process ``LocalCluster`` for the module)."""

from __future__ import annotations

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")

import dask.array as da  # noqa: E402
# the data of the in-process Dask tests (helpers only: importing a fixture would register it here)
from test_dask import QUERY_SIZE, dask_rows, multiclass_data, ranking_data, regression_data  # noqa: E402

from selboost import Identity, SelectiveLoss  # noqa: E402
from selboost import dask as sd  # noqa: E402
from selboost.metrics import loss_value, ndcg  # noqa: E402


@pytest.fixture(scope="module")
def process_client():
    # in a module of its own: a second client left open beside test_dask's in-process one made later
    # Dask fits on that one wait forever, and module fixtures are closed before the next module starts
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _ranking_eval_split():
    X, y, qid, _ = ranking_data()
    rows = 60 * QUERY_SIZE
    return (X[:rows], y[:rows], qid[:rows]), (X[rows:], y[rows:], qid[rows:])


# every task and both engines, each engine's reduction on two tasks (XGBoost's allreduce, the
# LightGBM callback's exchange); the in-process tests of test_dask cover every task on both engines
@pytest.mark.parametrize(["task", "engine"], [("regression", "xgboost"), ("regression", "lightgbm"),
                                              ("ranking", "lightgbm"), ("multiclass", "xgboost")])
def test_early_stopping_on_processes_matches_single_machine(process_client, engine, task):
    """Workers in separate processes evaluate their own eval rows; the summed metric matches the
    single-machine estimator's, and so does the round early stopping keeps (LightGBM's workers find
    their bins on their own rows: close, not equal)."""
    from selboost import SelectiveClassifier, SelectiveRanker, SelectiveRegressor

    common = dict(engine=engine, n_estimators=80, learning_rate=0.3, early_stopping_rounds=4,
                  **({"max_depth": 3} if engine == "xgboost" else {"num_leaves": 7}))
    if task == "ranking":
        (X, y, q), (Xv, yv, qv) = _ranking_eval_split()
        single = SelectiveRanker(**common).fit(X, y, qid=q, eval_set=[(Xv, yv)], eval_qid=[qv])
        chunks = 20 * QUERY_SIZE
        model = sd.DaskSelectiveRanker(client=process_client, **common).fit(
            *dask_rows(X, y, chunk=chunks), qid=da.from_array(q, chunks=chunks),
            eval_set=[tuple(dask_rows(Xv, yv, chunk=chunks))], eval_qid=(da.from_array(qv, chunks=chunks),))
        name = "ndcg@10"
    elif task == "multiclass":
        X, y, w = multiclass_data()
        Xv, yv, _ = multiclass_data(seed=7, n=600)
        single = SelectiveClassifier(**common).fit(X, y, sample_weight=w, eval_set=[(Xv, yv)])
        model = sd.DaskSelectiveClassifier(client=process_client, **common).fit(
            *dask_rows(X, y, w), eval_set=[tuple(dask_rows(Xv, yv, chunk=200))])
        name = "selective_loss"
    else:
        X, y, w = regression_data()
        Xv, yv, wv = regression_data(seed=5, n=600)
        single = SelectiveRegressor(**common).fit(X, y, sample_weight=w, eval_set=[(Xv, yv)],
                                                  eval_sample_weight=[wv])
        model = sd.DaskSelectiveRegressor(client=process_client, **common).fit(
            *dask_rows(X, y, w), eval_set=[tuple(dask_rows(Xv, yv, chunk=200))],
            eval_sample_weight=[da.from_array(wv, chunks=200)])
        name = "selective_loss"
    history = model.evals_result_["validation_0"][name]
    assert len(history) == model.best_iteration_ + 5 <= 80
    # LightGBM's workers find their feature bins on their own rows: a different model, not a worse one
    tolerance = dict(rel=0.02) if engine == "xgboost" else dict(rel=0.15)
    assert model.best_score_ == pytest.approx(single.best_score_, **tolerance)
    if engine == "xgboost":
        assert abs(model.best_iteration_ - single.best_iteration_) <= 2
    # the summed value is the whole eval set's metric of the model's own predictions
    if task == "ranking":
        raw = model.predict(da.from_array(Xv, chunks=400)).compute()
        assert history[model.best_iteration_] == pytest.approx(ndcg(yv, raw, np.full(40, QUERY_SIZE)), abs=1e-6)
    elif task == "regression":
        raw = model.predict(da.from_array(Xv, chunks=200)).compute()
        assert history[model.best_iteration_] == pytest.approx(
            loss_value(SelectiveLoss(Identity()), yv, raw, sample_weight=wv), abs=1e-6)

