"""SelectiveRegressor: fit the high-value region carefully, watch its error, stop early on it.

Customer value: most customers are worth little, a few are worth a lot; the decisions depend on the
value of the top ones. ``Identity() + 9 * Sigmoid(center, scale)`` at the high end of the targets
makes the loss ten times as sensitive there.
"""

import numpy as np
from sklearn.model_selection import train_test_split

import selboost
from selboost.metrics import region_rmse

rng = np.random.default_rng(1)
n = 12_000
X = rng.normal(size=(n, 8))
y = np.exp(0.6 * X[:, 0] + 0.3 * X[:, 1] * X[:, 2]) + 0.3 * rng.normal(size=n)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
X_fit, X_valid, y_fit, y_valid = train_test_split(X_train, y_train, test_size=0.25, random_state=0)
lo, hi = np.quantile(y_train, [0.9, 0.99])
center, scale = (lo + hi) / 2, (hi - lo) / 4

common = {"n_estimators": 400, "learning_rate": 0.1, "max_depth": 4, "early_stopping_rounds": 20,
          "eval_metric": selboost.RegionError(lo, hi), "n_jobs": 1}
models = {
    "square loss": selboost.SelectiveRegressor(**common),
    "selective": selboost.SelectiveRegressor(
        selboost.SelectiveLoss(selboost.Identity() + 9 * selboost.Sigmoid(center=center, scale=scale)), **common),
}
print(f"important region [{lo:.2f}, {hi:.2f}] (the 90th to 99th percentile of the targets)")
for name, model in models.items():
    model.fit(X_fit, y_fit, eval_set=[(X_valid, y_valid)])
    pred = model.predict(X_test)
    print(f"{name:12s} best iteration {model.best_iteration_:4d}  "
          f"region RMSE {region_rmse(y_test, pred, lo, hi):.4f}  R2 {model.score(X_test, y_test):.4f}")
