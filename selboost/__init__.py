"""selboost: selective matching losses as fast custom objectives for gradient boosting."""

from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh, WeightedSum
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss
from selboost.metrics import NDCG, LossMetric, RegionDetection, RegionError, lightgbm_metric, xgboost_metric
from selboost.regions import RegionLoss, region_link
from selboost.relevance import (SERA, Relevance, RelevanceLoss, UtilityScore, relevance, relevance_link,
                                relevance_weights)
from selboost.objectives import lightgbm_objective, set_init_score, xgboost_objective
from selboost.estimators import SelectiveClassifier, SelectiveRanker, SelectiveRegressor
from selboost.engines._xgboost_train import xgboost_train

__version__ = "0.1.0"

__all__ = [
    "Identity",
    "Sigmoid",
    "Sinh",
    "Exp",
    "PiecewiseLinear",
    "WeightedSum",
    "region_link",
    "SelectiveLoss",
    "ListwiseLoss",
    "PairwiseLoss",
    "MulticlassLoss",
    "RegionLoss",
    "Relevance",
    "relevance",
    "relevance_link",
    "relevance_weights",
    "RelevanceLoss",
    "xgboost_objective",
    "lightgbm_objective",
    "set_init_score",
    "xgboost_train",
    "xgboost_metric",
    "lightgbm_metric",
    "NDCG",
    "RegionError",
    "RegionDetection",
    "LossMetric",
    "SERA",
    "UtilityScore",
    "SelectiveRegressor",
    "SelectiveClassifier",
    "SelectiveRanker",
]
