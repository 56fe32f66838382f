"""selboost: selective matching losses as fast custom objectives for gradient boosting."""

from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh, WeightedSum
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss

__version__ = "0.1.0"

__all__ = [
    "Identity",
    "Sigmoid",
    "Sinh",
    "Exp",
    "PiecewiseLinear",
    "WeightedSum",
    "SelectiveLoss",
    "ListwiseLoss",
    "PairwiseLoss",
    "MulticlassLoss",
]
