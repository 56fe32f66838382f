"""selboost.xgboost_train: the same model as xgboost.train(obj=xgboost_objective(loss)), tree for tree.

Every case trains twice with selboost.xgboost_train (margins kept here and advanced by each round's trees on X,
and margins read from XGBoost without X) and once with xgboost.train, and compares the saved trees and
the predictions bit for bit. The device bookkeeping runs under Numba's CUDA simulator in a subprocess
(tests/cuda_sim_check.py driver); the same check on a real GPU is marked ``gpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import selboost
from selboost import (Identity, ListwiseLoss, LossMetric, MulticlassLoss, NDCG, PairwiseLoss, SelectiveLoss,
                      Sigmoid, xgboost_metric, xgboost_objective)
from selboost.engines import _xgboost_train as driver

xgb = pytest.importorskip("xgboost")

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "cuda_sim_check.py"
PARAMS = {"tree_method": "hist", "max_depth": 4, "eta": 0.3, "nthread": 1, "verbosity": 0}
ROUNDS = 8
N = 1200
SCALAR = SelectiveLoss(Identity() + 4 * Sigmoid(1, 0.5))


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the trees' default branches
    y = np.nan_to_num(X[:, 0]) + 0.5 * rng.normal(size=N)
    relevance = np.clip(np.floor(np.nan_to_num(X[:, 1]) + 2 + 0.5 * rng.normal(size=N)), 0, 4)
    classes = np.digitize(np.nan_to_num(X[:, 2]) + 0.3 * rng.normal(size=N), [-1.0, 0.0, 1.0]).astype(float)
    sizes = np.full(N // 40, 40)
    return {
        "X": X, "y": y, "relevance": relevance, "classes": classes, "sizes": sizes,
        "row_weight": rng.uniform(0.5, 2.0, N), "group_weight": rng.uniform(0.5, 2.0, sizes.size),
        "margin": rng.normal(size=N), "margins4": rng.normal(size=(N, 4)),
    }


D = _data()

#: name -> (loss, extra params, DMatrix fields)
CASES = {
    "scalar": (SCALAR, {"base_score": 0.3}, dict(label=D["y"])),
    "scalar-weights-base_margin": (SCALAR, {}, dict(label=D["y"], weight=D["row_weight"], base_margin=D["margin"])),
    "scalar-subsample": (SCALAR, {"subsample": 0.7, "colsample_bytree": 0.6, "seed": 5}, dict(label=D["y"])),
    "listwise-groups": (ListwiseLoss(), {"base_score": 0.0}, dict(label=D["relevance"], group=D["sizes"])),
    "listwise-group_weights-base_margin": (
        ListwiseLoss(Sigmoid(0.0, 2.0)), {},
        dict(label=D["relevance"], group=D["sizes"], weight=D["group_weight"], base_margin=D["margin"])),
    "pairwise-group_weights": (PairwiseLoss(pairs_per_item=3), {"base_score": 0.0},
                               dict(label=D["relevance"], group=D["sizes"], weight=D["group_weight"])),
    "multiclass-weights": (MulticlassLoss(), {"num_class": 4, "base_score": [0.1, -0.2, 0.3, 0.0]},
                           dict(label=D["classes"], weight=D["row_weight"])),
    "multiclass-base_margin": (MulticlassLoss(), {"num_class": 4},
                               dict(label=D["classes"], base_margin=D["margins4"])),
}


def _dmatrix(fields, X=None):
    return xgb.DMatrix(D["X"] if X is None else X, **fields)


def _trees(booster):
    """The saved model's trees (their JSON), which hold every split, default branch and leaf value."""
    gbm = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]
    return gbm.get("gbtree", gbm)["model"]["trees"]  # dart keeps its trees one level down


def assert_same_model(got, expected, fields):
    assert got.num_boosted_rounds() == expected.num_boosted_rounds()
    assert got.get_dump(dump_format="json") == expected.get_dump(dump_format="json")
    assert _trees(got) == _trees(expected)
    data = _dmatrix(fields)
    np.testing.assert_array_equal(got.predict(data, output_margin=True), expected.predict(data, output_margin=True))


def _reference(loss, params, fields, rounds=ROUNDS, **options):
    return xgb.train(params, _dmatrix(fields), rounds, obj=xgboost_objective(loss), verbose_eval=False, **options)


@pytest.mark.parametrize("with_X", [True, False], ids=["tree-margins", "engine-margins"])
@pytest.mark.parametrize("case", list(CASES))
def test_same_trees_as_xgboost_train(case, with_X):
    loss, extra, fields = CASES[case]
    params = dict(PARAMS, **extra)
    got = selboost.xgboost_train(params, _dmatrix(fields), ROUNDS, loss=loss, X=D["X"] if with_X else None,
                         verbose_eval=False)
    assert_same_model(got, _reference(loss, params, fields), fields)


def test_tree_margins_are_xgboost_margins_every_round():
    """The bookkeeping itself: after every round the kept margins equal XGBoost's cache bit for bit."""
    loss, extra, fields = CASES["multiclass-base_margin"]
    dtrain = _dmatrix(fields)
    booster = xgb.Booster(dict(PARAMS, **extra), [dtrain])
    keeper = driver.margin_keeper(booster, dtrain, loss, D["X"])
    assert isinstance(keeper, driver.TreeMargins)
    for i in range(5):
        keeper.boost(booster, dtrain, i)
        np.testing.assert_array_equal(keeper.margins, booster.predict(dtrain, output_margin=True, training=True))


def test_a_bound_loss_with_weights_the_dmatrix_cannot_hold():
    """Per-row weights with query groups: the bound loss carries them, as the estimators pass it."""
    fields = dict(label=D["relevance"], group=D["sizes"])
    bound = ListwiseLoss().bind(D["relevance"], D["sizes"], sample_weight=D["row_weight"])
    params = dict(PARAMS, base_score=0.0)
    objective = xgboost_objective(ListwiseLoss())
    dtrain = _dmatrix(fields)
    objective.register(dtrain, bound)
    expected = xgb.train(params, dtrain, ROUNDS, obj=objective)
    got = selboost.xgboost_train(params, _dmatrix(fields), ROUNDS, loss=bound, X=D["X"], verbose_eval=False)
    assert_same_model(got, expected, fields)


@pytest.mark.parametrize("case", ["scalar-weights-base_margin", "multiclass-weights"])
def test_continuing_a_model(case):
    loss, extra, fields = CASES[case]
    params = dict(PARAMS, **extra)
    first = _reference(loss, params, fields, rounds=4)
    for model in (first, bytearray(first.save_raw("json"))):
        got = selboost.xgboost_train(params, _dmatrix(fields), 5, loss=loss, X=D["X"], xgb_model=model,
                             verbose_eval=False)
        assert got.num_boosted_rounds() == 9
        assert_same_model(got, _reference(loss, params, fields, rounds=5, xgb_model=first), fields)


def test_early_stopping_metrics_and_callbacks():
    """Evaluation sets, a selboost metric, early stopping and a callback as xgboost.train runs them."""
    loss, extra, fields = CASES["scalar-weights-base_margin"]
    params = dict(PARAMS, **extra, eta=0.8, max_depth=6)  # overfits quickly: early stopping triggers
    held_out = _data(seed=1)
    evals_fields = dict(label=held_out["y"], base_margin=held_out["margin"])

    def run(fit):
        results = {}
        watch = [(_dmatrix(fields), "train"), (_dmatrix(evals_fields, held_out["X"]), "held_out")]
        rates = xgb.callback.LearningRateScheduler(lambda i: 0.8 * 0.9**i)
        booster = fit(watch, results, [rates])
        return booster, results

    got, got_results = run(lambda watch, results, cbs: selboost.xgboost_train(
        params, _dmatrix(fields), 60, loss=loss, X=D["X"], evals=watch, custom_metric=LossMetric(loss),
        early_stopping_rounds=3, evals_result=results, verbose_eval=False, callbacks=cbs))
    expected, expected_results = run(lambda watch, results, cbs: xgb.train(
        params, _dmatrix(fields), 60, obj=xgboost_objective(loss), evals=watch,
        custom_metric=xgboost_metric(LossMetric(loss)), maximize=False, early_stopping_rounds=3,
        evals_result=results, verbose_eval=False, callbacks=cbs))
    assert expected.num_boosted_rounds() < 60, "early stopping did not trigger: the test shows nothing"
    assert got.best_iteration == expected.best_iteration
    assert got_results == expected_results
    assert list(got_results["held_out"]) == ["rmse", LossMetric(loss).name]  # XGBoost's default metric, then ours
    assert_same_model(got, expected, fields)


def test_plain_callable_metric_and_maximize():
    """A plain XGBoost metric callable; an NDCG (higher is better) stops where it peaked."""
    loss, extra, fields = CASES["listwise-groups"]
    params = dict(PARAMS, **extra, disable_default_eval_metric=1)
    calls = []

    def mean_margin(margins, data):
        calls.append(margins.shape)
        return "mean_margin", float(np.mean(margins))

    results = {}
    selboost.xgboost_train(params, _dmatrix(fields), 3, loss=loss, X=D["X"], evals=[(_dmatrix(fields), "train")],
                   custom_metric=mean_margin, evals_result=results, verbose_eval=False)
    assert calls == [(N,)] * 3 and len(results["train"]["mean_margin"]) == 3
    results = {}
    booster = selboost.xgboost_train(params, _dmatrix(fields), 30, loss=loss, X=D["X"],
                             evals=[(_dmatrix(fields), "train")], custom_metric=NDCG(k=5),
                             early_stopping_rounds=30, evals_result=results, verbose_eval=False)
    history = results["train"]["ndcg@5"]
    assert history[-1] > history[0]  # training NDCG rises: a minimising stop would pick round 0
    assert booster.best_iteration == int(np.argmax(history))


def test_verbose_eval_prints(capsys):
    loss, extra, fields = CASES["scalar"]
    selboost.xgboost_train(dict(PARAMS, **extra), _dmatrix(fields), 4, loss=loss, X=D["X"],
                   evals=[(_dmatrix(fields), "train")], verbose_eval=2)
    printed = capsys.readouterr().out
    assert "[0]\ttrain-rmse" in printed and "[2]" in printed and "[1]" not in printed


def test_x_of_other_rows_is_refused():
    loss, extra, fields = CASES["scalar"]
    shuffled = D["X"][np.random.default_rng(3).permutation(N)]
    with pytest.raises(ValueError, match="X does not hold dtrain's rows"):
        selboost.xgboost_train(dict(PARAMS, **extra), _dmatrix(fields), 2, loss=loss, X=shuffled, verbose_eval=False)
    with pytest.raises(ValueError, match=r"X has shape \(10, 6\), dtrain 1200 rows and 6 columns"):
        selboost.xgboost_train(dict(PARAMS, **extra), _dmatrix(fields), 2, loss=loss, X=D["X"][:10], verbose_eval=False)
    # the wrong width is named here, not by XGBoost's prediction ("Feature shape mismatch")
    with pytest.raises(ValueError, match=r"X has shape \(1200, 5\), dtrain 1200 rows and 6 columns"):
        selboost.xgboost_train(dict(PARAMS, **extra), _dmatrix(fields), 2, loss=loss, X=D["X"][:, :5],
                               verbose_eval=False)


def test_x_differing_from_dtrain_in_one_entry_is_refused():
    """X is compared with dtrain's entries before the first round, missing values included: a change the
    first round's trees do not see (values above 2.5 made missing) is refused as surely as a moved row.
    A QuantileDMatrix keeps only histogram bins: X must fall in the same bins, and may differ within
    one (the trees cannot tell)."""
    loss, extra, fields = CASES["scalar"]
    params = dict(PARAMS, **extra, max_bin=16)
    cut = np.where(D["X"] > 2.5, np.nan, D["X"])
    first = int(np.flatnonzero(np.isnan(cut).any(axis=1) != np.isnan(D["X"]).any(axis=1))[0])
    with pytest.raises(ValueError, match=rf"row {first} of X differs from dtrain's \(its missing values\)"):
        selboost.xgboost_train(params, _dmatrix(fields), 1, loss=loss, X=cut, verbose_eval=False)
    nudged = D["X"].copy()
    row = int(np.flatnonzero(~np.isnan(nudged[:, 3]))[0])
    nudged[row, 3] += 1.0
    with pytest.raises(ValueError, match=rf"row {row} of X differs from dtrain's \(the value in column 3\)"):
        selboost.xgboost_train(params, _dmatrix(fields), 1, loss=loss, X=nudged, verbose_eval=False)
    quantised = xgb.QuantileDMatrix(D["X"], max_bin=16, **fields)
    with pytest.raises(ValueError, match=rf"row {row} of X differs from dtrain's \(the histogram bin in column 3\)"):
        selboost.xgboost_train(params, quantised, 1, loss=loss, X=nudged, verbose_eval=False)
    pointer, cuts = quantised.get_quantile_cut()
    within = D["X"].copy()
    column = cuts[pointer[3]:pointer[4]]
    bin_of = np.searchsorted(column, within[row, 3], side="right")
    within[row, 3] = np.nextafter(column[bin_of], -np.inf)  # the bin's largest value
    selboost.xgboost_train(params, quantised, 1, loss=loss, X=within, verbose_eval=False)


def test_multiclass_loss_needs_num_class():
    with pytest.raises(ValueError, match="set num_class"):
        selboost.xgboost_train(PARAMS, _dmatrix(dict(label=D["classes"])), 2, loss=MulticlassLoss(), X=D["X"],
                       verbose_eval=False)


@pytest.mark.parametrize("extra", [{"booster": "dart", "rate_drop": 0.3, "seed": 1}, {"num_parallel_tree": 3,
                                                                                      "subsample": 0.8}],
                         ids=["dart", "parallel-trees"])
def test_boosters_that_do_more_than_add_trees_read_xgboost_margins(extra):
    loss, base, fields = CASES["scalar"]
    params = dict(PARAMS, **base, **extra)
    with pytest.warns(UserWarning, match="do not only add trees"):
        got = selboost.xgboost_train(params, _dmatrix(fields), 5, loss=loss, X=D["X"], verbose_eval=False)
    assert_same_model(got, _reference(loss, params, fields, rounds=5), fields)


def test_bad_arguments():
    loss, extra, fields = CASES["scalar"]
    with pytest.raises(TypeError, match="custom_metric"):
        selboost.xgboost_train(PARAMS, _dmatrix(fields), 1, loss=loss, custom_metric="rmse")
    with pytest.raises(TypeError, match="DMatrix"):
        selboost.xgboost_train(PARAMS, _dmatrix(fields), 1, loss=loss, evals=[(D["X"], "x")])
    with pytest.raises(TypeError, match="loss"):
        selboost.xgboost_train(PARAMS, _dmatrix(fields), 1, loss="reg:squarederror")


def test_the_cpu_estimators_keep_xgboost_train():
    """On the CPU the engine trains with xgboost.train (measured faster, benchmarks/RESULTS.md §5); the
    driver gives the same model from the estimator's parameters."""
    from selboost import SelectiveRegressor
    from selboost.engines import get_engine

    X, y = np.nan_to_num(D["X"]), D["y"]
    model = SelectiveRegressor(loss=SCALAR, n_estimators=5, n_jobs=1, random_state=0).fit(X, y)
    assert json.loads(model.get_booster().save_config())["learner"]["generic_param"]["device"] == "cpu"
    bound = SCALAR.bind(y)
    params = dict(model._engine_params(get_engine("xgboost"), 1), base_score=float(bound.init_score()))
    got = selboost.xgboost_train(params, xgb.DMatrix(X, label=y), 5, loss=bound, X=X, verbose_eval=False)
    assert _trees(got) == _trees(model.get_booster())


def _run_check(mode, simulator):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(CHECK), mode], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.child_process(long=True)
def test_device_margins_under_the_simulator():
    """Device margins, CUDA-kernel gradients and the device add, with a CPU booster (the simulator
    cannot run XGBoost on a device): the margins equal XGBoost's every round, for every loss kind."""
    rc, out = _run_check("driver", simulator=True)
    assert rc == 0, out
    for kind in ("selective", "listwise", "pairwise", "multiclass"):
        assert f"ok device margins {kind}" in out, out
    assert "all driver checks passed" in out, out


@pytest.mark.gpu
def test_device_margins_on_gpu():
    rc, out = _run_check("driver", simulator=False)
    if "SKIP" in out:
        pytest.skip(out.strip().splitlines()[-1])
    assert rc == 0, out
    assert "all driver checks passed" in out, out


def test_warnings_are_not_raised_on_the_plain_path():
    loss, extra, fields = CASES["scalar"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        selboost.xgboost_train(dict(PARAMS, **extra), _dmatrix(fields), 2, loss=loss, X=D["X"], verbose_eval=False)


def test_device_cuda_without_a_usable_gpu_is_refused():
    """xgboost_train and the engine's device="cuda" branch (which trains through it) raise the clear
    error the README promises where XGBoost would fall back to the CPU with warnings of its own."""
    from selboost.engines import get_engine

    engine = get_engine("xgboost")
    problem = engine.gpu_problem("cuda")
    if problem is None:
        pytest.skip("a usable GPU: tests/cuda_sim_check.py driver checks the device path")
    loss, extra, fields = CASES["scalar"]
    with pytest.raises(ValueError, match=r"params\['device'\]='cuda' needs a usable CUDA GPU: .*use device='cpu'"):
        selboost.xgboost_train(dict(PARAMS, **extra, device="cuda"), _dmatrix(fields), 1, loss=loss, X=D["X"],
                               verbose_eval=False)
    bound = SCALAR.bind(D["y"])
    with pytest.raises(ValueError, match="needs a usable CUDA GPU"):
        engine.train(dict(PARAMS, device="cuda:0"), np.nan_to_num(D["X"]), bound, bound.init_score(), label=D["y"],
                     num_boost_round=1)
