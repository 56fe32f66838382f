"""The same selective loss as a LightGBM custom objective (``params["objective"] = callable``).

LightGBM starts a custom objective from 0 and does not add ``init_score`` at prediction: set it on
the training and validation Datasets and add it back to ``predict(raw_score=True)``.
"""

import lightgbm as lgb
import numpy as np

import selboost
from selboost.metrics import region_rmse

rng = np.random.default_rng(0)
n = 20_000
X = rng.normal(size=(n, 6))
y = 3 + 1.5 * X[:, 0] + np.sin(2 * X[:, 1]) * X[:, 2] + 0.4 * rng.standard_t(3, size=n)
X_train, y_train, X_test, y_test = X[:15_000], y[:15_000], X[15_000:], y[15_000:]

loss = selboost.SelectiveLoss(selboost.Identity() + 9 * selboost.Sigmoid(center=3.0, scale=0.5))
dtrain = lgb.Dataset(X_train, y_train)
dvalid = lgb.Dataset(X_test, y_test, reference=dtrain)
init = selboost.set_init_score(dtrain, loss)
selboost.set_init_score(dvalid, loss, init=init)
params = {"objective": selboost.lightgbm_objective(loss), "learning_rate": 0.1, "num_leaves": 15,
          "num_threads": 1, "verbose": -1, "metric": "None"}
record = {}
booster = lgb.train(params, dtrain, 100, valid_sets=[dvalid], valid_names=["test"],
                    feval=selboost.lightgbm_metric(selboost.RegionError(2.5, 3.5)),
                    callbacks=[lgb.record_evaluation(record)])
selective = booster.predict(X_test, raw_score=True) + init

square = lgb.train({"objective": "regression", "learning_rate": 0.1, "num_leaves": 15, "num_threads": 1,
                    "verbose": -1}, lgb.Dataset(X_train, y_train), 100)
baseline = square.predict(X_test)
history = record["test"]["region_rmse"]
print(f"region RMSE [2.5, 3.5] as LightGBM evaluated it: round 1 {history[0]:.4f}, round 100 {history[-1]:.4f}")
print(f"region RMSE [2.5, 3.5]: selective {region_rmse(y_test, selective, 2.5, 3.5):.4f}, "
      f"regression {region_rmse(y_test, baseline, 2.5, 3.5):.4f}")
