"""``selboost warmup`` compiles into Numba's cache exactly what a later fit needs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from selboost.warmup import parse_loss

FIT_AND_COUNT_COMPILATIONS = textwrap.dedent("""
    import numpy as np
    from selboost import SelectiveLoss, SelectiveRegressor, Identity, Sigmoid
    from selboost import _kernels as K
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    for engine in ("xgboost", "lightgbm"):
        SelectiveRegressor(SelectiveLoss(Identity() + 9 * Sigmoid(0.5, 0.5)), engine=engine,
                           n_estimators=3).fit(X, X[:, 0])
    compiled = [name for name, dispatcher in K._COMPILED.items() if dispatcher.signatures]
    misses = [name for name, dispatcher in K._COMPILED.items() if sum(dispatcher.stats.cache_misses.values())]
    print("COMPILED", len(compiled), "MISSES", misses)
""")


def _run(args, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=True).stdout


def test_a_fit_after_warmup_compiles_nothing(tmp_path):
    out = _run(["-m", "selboost.cli", "warmup", "--losses", "selective:identity + 9*sigmoid(0.5, 0.5)"], tmp_path)
    assert "xgboost" in out and "lightgbm" in out and f"compiled into {tmp_path}" in out
    after = _run(["-c", FIT_AND_COUNT_COMPILATIONS], tmp_path)
    assert "MISSES []" in after, after
    assert "COMPILED 0" not in after


def test_warmup_losses_are_parsed_as_the_estimators_defaults_or_with_a_link():
    loss, estimator = parse_loss("listwise")
    assert type(loss).__name__ == "ListwiseLoss" and estimator.__name__ == "SelectiveRanker"
    loss, estimator = parse_loss("selective:identity + 9*sigmoid(2, 0.5)")
    assert "Sigmoid(center=2.0, scale=0.5)" in repr(loss) and estimator.__name__ == "SelectiveRegressor"
    loss, estimator = parse_loss("binary")
    assert loss.target == "link" and estimator.__name__ == "SelectiveClassifier"
    with pytest.raises(ValueError, match="unknown loss kind"):
        parse_loss("quantile")


@pytest.mark.parametrize("argv, message", [
    (["--losses", "quantile"], "unknown loss kind 'quantile'"),
    (["--losses", "selective:identity +"], "--link"),
    (["--engines", "catboost"], "--engines takes"),
])
def test_warmup_bad_arguments_are_a_clear_error(argv, message, capsys):
    from selboost.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["warmup", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
