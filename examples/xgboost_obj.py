"""A selective loss as ``obj=`` for ``xgboost.train``, starting from the loss's optimal constant.

The targets that matter are those near 3 (say, a decision threshold). ``Identity() + 9 * Sigmoid(3, 0.5)``
is square loss far from 3 and ten times as sensitive around it. Compared with ``reg:squarederror`` on
the same trees budget, the error among targets in [2.5, 3.5] drops.
"""

import numpy as np
import xgboost as xgb

import selboost
from selboost.metrics import region_rmse

rng = np.random.default_rng(0)
n = 20_000
X = rng.normal(size=(n, 6))
y = 3 + 1.5 * X[:, 0] + np.sin(2 * X[:, 1]) * X[:, 2] + 0.4 * rng.standard_t(3, size=n)
X_train, y_train, X_test, y_test = X[:15_000], y[:15_000], X[15_000:], y[15_000:]
params = {"max_depth": 3, "eta": 0.1, "nthread": 1, "tree_method": "hist"}

loss = selboost.SelectiveLoss(selboost.Identity() + 9 * selboost.Sigmoid(center=3.0, scale=0.5))
dtrain = xgb.DMatrix(X_train, label=y_train)
init = selboost.set_init_score(dtrain, loss)  # base_margin = h^-1(mean h(y)) on every row
booster = xgb.train(params, dtrain, 100, obj=selboost.xgboost_objective(loss))
dtest = xgb.DMatrix(X_test)
selboost.set_init_score(dtest, loss, init=init)  # the same constant at prediction
selective = booster.predict(dtest)

square = xgb.train({**params, "objective": "reg:squarederror"}, xgb.DMatrix(X_train, label=y_train), 100)
baseline = square.predict(xgb.DMatrix(X_test))

print(f"initial score {init:.4f} (mean target {y_train.mean():.4f})")
print(f"region RMSE [2.5, 3.5]: selective {region_rmse(y_test, selective, 2.5, 3.5):.4f}, "
      f"reg:squarederror {region_rmse(y_test, baseline, 2.5, 3.5):.4f}")
print(f"overall RMSE: selective {np.sqrt(np.mean((selective - y_test) ** 2)):.4f}, "
      f"reg:squarederror {np.sqrt(np.mean((baseline - y_test) ** 2)):.4f}")
