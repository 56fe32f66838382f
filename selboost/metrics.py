"""Evaluation metrics for selective objectives, as plain functions and as engine callables.

Plain functions (NumPy in, float out):

- ``ndcg(y, score, group, k=10, no_relevant="one", gain="exponential", ties="order")``: mean NDCG@k
  over queries, with the conventions for queries with no relevant document and for tied scores as
  options (``ndcg_per_query``: one value per query);
- ``region_rmse`` / ``region_mae(y, pred, lo, hi, sample_weight=None, rows="inside")``: the error on
  the rows whose *target* lies in the important region [lo, hi], outside it (``rows="outside"``), or
  whose target *or* prediction lies in it (``rows="either"``: false alarms count too);
- ``region_precision`` / ``region_recall`` / ``region_f1(y, pred, lo, hi)``: "predicted in the region"
  against "truly in the region";
- ``loss_value(loss, y, raw, group=None, sample_weight=None, group_weight=None)``: the mean selective
  loss;
- imbalanced regression (``selboost.relevance``): ``relevance(y_train)``, the relevance function phi
  of the targets (IRon's adjusted-boxplot default, or control points); ``sera`` (SERA = sum phi(y)
  (pred - y)^2), ``sera_symmetric`` (false alarms count too), ``utility`` and the utility-based
  ``utility_precision`` / ``utility_recall`` / ``utility_f1``.

Metric objects (``NDCG``, ``RegionError``, ``RegionDetection``, ``LossMetric``, ``SERA``, ``UtilityScore``) carry the same
computations plus a name and a direction; ``xgboost_metric(metric)`` turns one into a ``custom_metric=`` callable for
``xgboost.train`` and ``lightgbm_metric(metric)`` into a ``feval=`` callable for ``lightgbm.train``.
Labels, groups and weights are read from the evaluation data and validated once per data object.
Both engines pass *raw* scores to these callables when the objective is a custom one, including the
data's ``base_margin`` / ``init_score``: set it on every validation set (``set_init_score``).
"""

from __future__ import annotations


import numpy as np

from selboost.engines import get_engine
from selboost._validation import as_float_array, check_choice, group_pointer, row_weights, sample_weights
from selboost.links import Link
from selboost._metric_base import _Metric, _Part, _Prepared
from selboost.relevance import (  # noqa: F401 (the imbalanced-regression metrics live there)
    SERA, Relevance, UtilityScore, relevance, sera, sera_symmetric, utility, utility_f1, utility_precision,
    utility_recall)
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, check_loss, exponential_gain

__all__ = [
    "NO_RELEVANT",
    "TIES",
    "ndcg",
    "ndcg_per_query",
    "REGION_ROWS",
    "region_rmse",
    "region_mae",
    "region_precision",
    "region_recall",
    "region_f1",
    "loss_value",
    "NDCG",
    "RegionError",
    "RegionDetection",
    "LossMetric",
    "xgboost_metric",
    "lightgbm_metric",
    "Relevance",
    "relevance",
    "sera",
    "sera_symmetric",
    "utility",
    "utility_precision",
    "utility_recall",
    "utility_f1",
    "SERA",
    "UtilityScore",
]

#: what a query with no relevant document (ideal DCG 0) counts as
NO_RELEVANT = ("one", "zero", "skip")
#: how tied scores are ranked
TIES = ("order", "average", "pessimistic")


# ---------------------------------------------------------------- NDCG


def _gains(y, gain):
    if gain == "exponential":
        if y.max() > 60:
            raise ValueError(f"relevance up to {y.max()} overflows the exponential gain 2^r - 1: use gain='linear'")
        return exponential_gain(y)
    if gain == "linear":
        return y
    raise ValueError(f"gain must be 'exponential' or 'linear', got {gain!r}")


def _check_k(k):
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be a positive int or None, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    return int(k)


class _RankingData:
    """Relevance gains and the ideal DCG@k of every query, computed once."""

    def __init__(self, y, group, k, gain):
        y = as_float_array(y, "y")
        if (y < 0).any():
            raise ValueError(f"y (relevance) must be >= 0, found {y.min()}")
        self.n_rows = y.shape[0]
        self.pointer = group_pointer(group, y.shape[0])
        self.n_groups = self.pointer.size - 1
        sizes = np.diff(self.pointer)
        self.group_id = np.repeat(np.arange(self.n_groups), sizes)
        rank = np.arange(self.n_rows) - np.repeat(self.pointer[:-1], sizes)
        self.discount = 1.0 / np.log2(rank + 2.0)
        if k is not None:
            self.discount[rank >= k] = 0.0
        self.gain = _gains(y, gain)
        order = np.lexsort((-self.gain, self.group_id))
        self.ideal = self._dcg(self.gain[order])

    def _dcg(self, sorted_gain):
        return np.bincount(self.group_id, weights=sorted_gain * self.discount, minlength=self.n_groups)

    def _tie_averaged_dcg(self, sorted_gain, sorted_score):
        """DCG with the gains of every run of tied scores averaged over the run's positions: the mean DCG
        over every order of the tied items (McSherry & Najork, 2008)."""
        new_run = np.ones(self.n_rows, dtype=bool)
        new_run[1:] = (sorted_score[1:] != sorted_score[:-1]) | (self.group_id[1:] != self.group_id[:-1])
        starts = np.flatnonzero(new_run)
        run_gain = np.add.reduceat(sorted_gain, starts) / np.diff(np.append(starts, self.n_rows))
        run_discount = np.add.reduceat(self.discount, starts)
        return np.bincount(self.group_id[starts], weights=run_gain * run_discount, minlength=self.n_groups)

    def per_query(self, score, no_relevant, ties="order"):
        score = as_float_array(score, "score")
        if score.shape[0] != self.n_rows:
            raise ValueError(f"score has {score.shape[0]} rows, y has {self.n_rows}")
        if ties == "pessimistic":  # tied items ranked worst first
            order = np.lexsort((self.gain, -score, self.group_id))
        else:  # stable: tied scores keep their input order, as LightGBM and XGBoost rank
            order = np.lexsort((-score, self.group_id))
        if ties == "average":
            dcg = self._tie_averaged_dcg(self.gain[order], score[order])
        else:
            dcg = self._dcg(self.gain[order])
        empty = self.ideal <= 0.0
        out = np.divide(dcg, self.ideal, out=np.zeros_like(dcg), where=~empty)
        out[empty] = {"one": 1.0, "zero": 0.0, "skip": np.nan}[no_relevant]
        return out


def _check_conventions(no_relevant, ties):
    check_choice(no_relevant, "no_relevant", NO_RELEVANT)
    check_choice(ties, "ties", TIES)


def _mean(per_query, weight=None):
    """The (weighted) mean over the queries that have a value (``no_relevant="skip"`` leaves NaN)."""
    kept = ~np.isnan(per_query)
    if not kept.any():
        return float("nan")
    if kept.all():
        return float(per_query.mean() if weight is None else np.average(per_query, weights=weight))
    return float(per_query[kept].mean() if weight is None else np.average(per_query[kept], weights=weight[kept]))


def ndcg_per_query(y, score, group, k=10, no_relevant="one", gain="exponential", ties="order"):
    """NDCG@k of every query group (an array with one value per group; NaN for a query with no
    relevant document under ``no_relevant="skip"``); see ``ndcg``."""
    _check_conventions(no_relevant, ties)
    return _RankingData(y, group, _check_k(k), gain).per_query(score, no_relevant, ties)


def ndcg(y, score, group, k=10, no_relevant="one", gain="exponential", ties="order"):
    """Mean NDCG@k over query groups.

        DCG@k  = sum_{i < k} gain(r_(i)) / log2(i + 2)      (items sorted by decreasing score)
        NDCG@k = DCG@k / DCG@k of the ideal order,          gain(r) = 2^r - 1 or r ("linear")

    ``group`` holds the sizes of consecutive query groups; ``k=None`` uses the whole list.

    ``no_relevant``: a query with no relevant document (ideal DCG 0) counts as 1 (``"one"``,
    LightGBM's convention and XGBoost's ``ndcg@k``), as 0 (``"zero"``, scikit-learn's ``ndcg_score``
    and XGBoost's ``ndcg@k-``), or is left out of the mean (``"skip"``; NaN when every query is).

    ``ties``: tied scores keep their input order (``"order"``, a stable sort, as LightGBM and XGBoost
    rank), are averaged over every order of the tied items (``"average"``, McSherry & Najork 2008, as
    ``sklearn.metrics.ndcg_score`` does), or rank their least relevant items first (``"pessimistic"``).

    ``sklearn.metrics.ndcg_score`` uses the labels themselves as gains: it equals
    ``gain="linear", no_relevant="zero", ties="average"`` (and the exponential gain is scikit-learn
    given ``2^r - 1`` as labels).
    """
    return _mean(ndcg_per_query(y, score, group, k, no_relevant, gain, ties))


# ---------------------------------------------------------------- important regions

#: which rows a region error is taken over
REGION_ROWS = {
    "inside": "rows whose target lies in [lo, hi]",
    "outside": "rows whose target lies outside [lo, hi]",
    "either": "rows whose target or prediction lies in [lo, hi] (misses and false alarms both count)",
}


def _region_end(value, name, open_value):
    if value is None:
        return open_value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    return float(value)


def _check_region(lo, hi):
    """(lo, hi) as floats; None opens a side (-inf / inf)."""
    lo, hi = _region_end(lo, "lo", -np.inf), _region_end(hi, "hi", np.inf)
    if np.isnan(lo) or np.isnan(hi) or lo > hi:
        raise ValueError(f"the region needs lo <= hi, got [{lo}, {hi}]")
    return lo, hi


def _in_region(values, lo, hi):
    return (values >= lo) & (values <= hi)


class _RegionData:
    """Targets, weights and which targets lie in the region, validated once."""

    def __init__(self, y, lo, hi, sample_weight, rows="inside"):
        self.lo, self.hi = _check_region(lo, hi)
        self.rows = check_choice(rows, "rows", tuple(REGION_ROWS))
        self.y = as_float_array(y, "y")
        self.weight = sample_weights(sample_weight, self.y.shape[0])
        self.inside = _in_region(self.y, self.lo, self.hi)
        if self.rows in ("inside", "either") and not self.inside.any():
            raise ValueError(f"no target lies in the region [{self.lo}, {self.hi}]: the region error is undefined")
        if self.rows == "outside" and self.inside.all():
            raise ValueError(f"every target lies in the region [{self.lo}, {self.hi}]: the error outside is undefined")

    def _pred(self, pred):
        pred = as_float_array(pred, "pred")
        if pred.shape[0] != self.y.shape[0]:
            raise ValueError(f"pred has {pred.shape[0]} rows, y has {self.y.shape[0]}")
        return pred

    def error(self, pred, kind):
        pred = self._pred(pred)
        if self.rows == "inside":
            chosen = self.inside
        elif self.rows == "outside":
            chosen = ~self.inside
        else:
            chosen = self.inside | _in_region(pred, self.lo, self.hi)
        weight = self.weight[chosen] if self.weight.size else None
        if weight is not None and not (weight > 0).any():
            raise ValueError(f"every row {REGION_ROWS[self.rows][5:]} has weight 0: the region error is undefined")
        residual = pred[chosen] - self.y[chosen]
        if kind == "rmse":
            return float(np.sqrt(np.average(residual * residual, weights=weight)))
        return float(np.average(np.abs(residual), weights=weight))

    def detection(self, pred):
        """(precision, recall, F1) of "predicted inside" against "truly inside" (0 where undefined)."""
        from sklearn.metrics import precision_recall_fscore_support

        predicted = _in_region(self._pred(pred), self.lo, self.hi)
        precision, recall, f1, _ = precision_recall_fscore_support(
            self.inside, predicted, average="binary", zero_division=0.0,
            sample_weight=self.weight if self.weight.size else None)
        return float(precision), float(recall), float(f1)


def region_rmse(y, pred, lo, hi, sample_weight=None, rows="inside"):
    """RMSE over the rows ``rows`` selects (``REGION_ROWS``), by default those whose target lies in the
    important region: sqrt(sum_{i in rows} w_i (pred_i - y_i)^2 / sum_{i in rows} w_i).

    ``rows="inside"``: lo <= y_i <= hi; ``"outside"``: the other rows; ``"either"``: lo <= y_i <= hi or
    lo <= pred_i <= hi, so that a prediction that wanders into the region from outside counts as much
    as one that leaves it. ``lo=None`` / ``hi=None`` (or -inf / inf) leave a side open; a ValueError
    when no row is selected."""
    return _RegionData(y, lo, hi, sample_weight, rows).error(pred, "rmse")


def region_mae(y, pred, lo, hi, sample_weight=None, rows="inside"):
    """Mean absolute error over the rows ``rows`` selects (as for ``region_rmse``)."""
    return _RegionData(y, lo, hi, sample_weight, rows).error(pred, "mae")


def region_precision(y, pred, lo, hi, sample_weight=None):
    """Of the rows predicted in [lo, hi], the (weighted) share whose target is there too:
    sum w [y in R and pred in R] / sum w [pred in R]; 0 when no prediction lies in the region."""
    return _RegionData(y, lo, hi, sample_weight).detection(pred)[0]


def region_recall(y, pred, lo, hi, sample_weight=None):
    """Of the rows whose target lies in [lo, hi], the (weighted) share predicted there:
    sum w [y in R and pred in R] / sum w [y in R]."""
    return _RegionData(y, lo, hi, sample_weight).detection(pred)[1]


def region_f1(y, pred, lo, hi, sample_weight=None):
    """The harmonic mean of ``region_precision`` and ``region_recall`` (0 when both are 0)."""
    return _RegionData(y, lo, hi, sample_weight).detection(pred)[2]


# ---------------------------------------------------------------- the loss itself


def loss_value(loss, y, raw, group=None, sample_weight=None, group_weight=None):
    """The mean selective loss of raw scores: sum_i w_i loss_i / sum_i w_i over rows (scalar and
    multi-class losses) or the mean over query groups of the (weighted) group losses (listwise and
    pairwise)."""
    raw_array = np.asarray(raw)
    n_classes = raw_array.shape[1] if isinstance(loss, MulticlassLoss) and raw_array.ndim == 2 else None
    return check_loss(loss).bind_data(y, group, sample_weight, group_weight, n_classes).mean_loss(raw)


# ---------------------------------------------------------------- sums that add up over parts
#
# Distributed evaluation: every metric here is a ratio of sums over rows or query groups. ``part``
# prepares one part of the evaluation data (one worker's rows, whole query groups); its ``sums(raw)``
# are additive over parts, and ``metric.from_sums(total)`` gives the metric of the whole data, equal to
# ``prepare(...).evaluate(raw)`` up to summation order. A part may hold no row, or no row of a region:
# checks that need the whole data are left to ``from_sums`` (NaN where the metric is undefined).


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator > 0 else float("nan")


def _part_weight(sample_weight, n_rows, group=None, group_weight=None):
    weight = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if group_weight is not None:
        weight = weight * np.repeat(np.asarray(group_weight, dtype=np.float64), np.asarray(group, dtype=np.int64))
    return weight


# ---------------------------------------------------------------- metric objects


class NDCG(_Metric):
    """NDCG@k over query groups (see ``ndcg`` for the conventions); higher is better. Named ``ndcg@k``
    (``ndcg@k-`` for ``no_relevant="zero"``, XGBoost's spelling; ``ndcg@k-skip`` for ``"skip"``), so
    XGBoost's early stopping maximises it."""

    higher_is_better = True

    def __init__(self, k=10, no_relevant="one", gain="exponential", ties="order"):
        super().__init__()
        self.k = _check_k(k)
        _check_conventions(no_relevant, ties)
        self.no_relevant = no_relevant
        self.ties = ties
        _gains(np.zeros(1), gain)
        self.gain = gain
        suffix = {"one": "", "zero": "-", "skip": "-skip"}[no_relevant]
        self.name = ("ndcg" if self.k is None else f"ndcg@{self.k}") + suffix

    def __repr__(self):
        return (f"NDCG(k={self.k!r}, no_relevant={self.no_relevant!r}, gain={self.gain!r}"
                + ("" if self.ties == "order" else f", ties={self.ties!r}") + ")")

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        data = _RankingData(y, group, self.k, self.gain)
        weight = None if group_weight is None else sample_weights(group_weight, data.n_groups, "group_weight")
        return _Prepared(lambda raw: _mean(data.per_query(raw, self.no_relevant, self.ties), weight))

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        if np.size(y) == 0:
            return _Part(2)
        data = _RankingData(y, group, self.k, self.gain)
        weight = np.ones(data.n_groups) if group_weight is None else np.asarray(group_weight, dtype=np.float64)

        def sums(raw):
            values = data.per_query(raw, self.no_relevant, self.ties)
            kept = ~np.isnan(values)
            return [np.sum(values[kept] * weight[kept]), np.sum(weight[kept])]

        return _Part(2, sums)

    def from_sums(self, sums):
        return _ratio(sums[0], sums[1])


class _RegionMetric(_Metric):
    """What the region metrics share: the region, and ``link`` (predictions are ``link.h(raw)``, for
    losses with ``target="link"``; by default the raw score is the prediction)."""

    def __init__(self, lo, hi, link=None):
        super().__init__()
        self.lo, self.hi = _check_region(lo, hi)
        if link is not None and not isinstance(link, Link):
            raise TypeError(f"link must be a selboost link or None, got {link!r}")
        self.link = link

    def _prepared(self, y, group, sample_weight, group_weight, rows, value):
        if group_weight is not None:
            n_rows = np.shape(y)[0]
            sample_weight = row_weights(sample_weight, group_weight, group_pointer(group, n_rows), n_rows)
        data = _RegionData(y, self.lo, self.hi, sample_weight, rows)
        link = self.link
        return _Prepared(lambda raw: value(data, raw if link is None else link.h(np.asarray(raw, float))))

    def _part(self, y, group, sample_weight, group_weight, size, sums):
        """A part of ``size`` sums: ``sums(y, weight, inside, pred)`` over its rows (``inside``: the
        targets in the region; ``pred``: the predictions, through ``link``)."""
        if np.size(y) == 0:
            return _Part(size)
        y = as_float_array(y, "y")
        weight = _part_weight(sample_weight, y.shape[0], group, group_weight)
        inside = _in_region(y, self.lo, self.hi)
        link = self.link

        def part_sums(raw):
            pred = np.asarray(raw, dtype=np.float64) if link is None else link.h(np.asarray(raw, float))
            return sums(y, weight, inside, pred)

        return _Part(size, part_sums)


class RegionError(_RegionMetric):
    """RMSE (``kind="rmse"``) or MAE (``kind="mae"``) over the rows ``rows`` selects in [lo, hi]
    (``"inside"``, ``"outside"`` or ``"either"``: see ``region_rmse``); lower is better. Named
    ``region_rmse`` (``region_rmse_outside``, ``region_rmse_either``; ``mae`` alike). ``link``: as
    for every region metric, predictions are ``link.h(raw)`` when it is given.

    With ``rows="inside"`` the rows are chosen by their *target*, so a constant at the region's centre
    already scores well: when the initial score lies inside [lo, hi], watch this metric rather than
    early-stop on it, or use ``rows="either"``, which also counts predictions that wander in.
    """

    higher_is_better = False

    def __init__(self, lo, hi, kind="rmse", link=None, rows="inside"):
        super().__init__(lo, hi, link)
        self.kind = check_choice(kind, "kind", ("rmse", "mae"))
        self.rows = check_choice(rows, "rows", tuple(REGION_ROWS))
        self.name = f"region_{kind}" + ("" if rows == "inside" else f"_{rows}")

    def __repr__(self):
        return (f"RegionError(lo={self.lo!r}, hi={self.hi!r}, kind={self.kind!r}, link={self.link!r}"
                + ("" if self.rows == "inside" else f", rows={self.rows!r}") + ")")

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        return self._prepared(y, group, sample_weight, group_weight, self.rows,
                              lambda data, pred: data.error(pred, self.kind))

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        def sums(y, weight, inside, pred):
            chosen = {"inside": inside, "outside": ~inside}.get(self.rows)
            if chosen is None:
                chosen = inside | _in_region(pred, self.lo, self.hi)
            residual = np.abs(pred[chosen] - y[chosen])
            error = residual * residual if self.kind == "rmse" else residual
            return [np.sum(weight[chosen] * error), np.sum(weight[chosen])]

        return self._part(y, group, sample_weight, group_weight, 2, sums)

    def from_sums(self, sums):
        value = _ratio(sums[0], sums[1])
        return float(np.sqrt(value)) if self.kind == "rmse" else value


class RegionDetection(_RegionMetric):
    """Precision, recall or F1 (``score=``) of "predicted in [lo, hi]" against "target in [lo, hi]"
    (see ``region_precision``, ``region_recall``, ``region_f1``); higher is better. Named
    ``region_precision``, ``region_recall`` or ``region_f1``."""

    higher_is_better = True
    _SCORES = ("precision", "recall", "f1")

    def __init__(self, lo, hi, score="f1", link=None):
        super().__init__(lo, hi, link)
        self.score = check_choice(score, "score", self._SCORES)
        self.name = f"region_{score}"

    def __repr__(self):
        return f"RegionDetection(lo={self.lo!r}, hi={self.hi!r}, score={self.score!r}, link={self.link!r})"

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        index = self._SCORES.index(self.score)
        return self._prepared(y, group, sample_weight, group_weight, "inside",
                              lambda data, pred: data.detection(pred)[index])

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        def sums(y, weight, inside, pred):
            predicted = _in_region(pred, self.lo, self.hi)
            return [np.sum(weight[inside & predicted]), np.sum(weight[~inside & predicted]),
                    np.sum(weight[inside & ~predicted])]

        return self._part(y, group, sample_weight, group_weight, 3, sums)

    def from_sums(self, sums):
        tp, fp, fn = (float(v) for v in sums)
        if self.score == "precision":
            return tp / (tp + fp) if tp + fp > 0 else 0.0
        if self.score == "recall":
            return tp / (tp + fn) if tp + fn > 0 else 0.0
        return 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0


class LossMetric(_Metric):
    """The mean selective loss itself (see ``loss_value``); lower is better. Named ``selective_loss``
    unless ``name`` is given."""

    higher_is_better = False

    def __init__(self, loss, name="selective_loss"):
        super().__init__()
        self.loss = check_loss(loss)
        self.name = str(name)

    def __repr__(self):
        return f"LossMetric({self.loss!r})"

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        return _Prepared(self.loss.bind_data(y, group, sample_weight, group_weight, n_classes).mean_loss)

    def check_parts(self):
        if getattr(self.loss, "group_scale", None) == "auto":
            raise ValueError("LossMetric: ListwiseLoss(group_scale='auto') weighs groups by the whole data's "
                             "start hessian, which no part knows: give group_scale a number to evaluate on parts")

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        self.check_parts()
        if np.size(y) == 0:
            return _Part(2)
        bound = self.loss.bind_data(y, group, sample_weight, group_weight, n_classes)
        # the normaliser of the bound loss's own mean_loss: the weight total, else the count of its terms
        row_weight = getattr(bound, "row_weight", None) if isinstance(self.loss, MulticlassLoss) else None
        if isinstance(self.loss, SelectiveLoss):
            row_weight = bound.weight

        def sums(raw):
            values = bound.loss(raw)
            norm = row_weight.sum() if row_weight is not None and row_weight.size else values.size
            return [values.sum(), norm]

        return _Part(2, sums)

    def from_sums(self, sums):
        return _ratio(sums[0], sums[1])


def as_metric(metric):
    """``metric`` as a selboost metric: itself, or a loss as its ``LossMetric``."""
    if isinstance(metric, _Metric):
        return metric
    if isinstance(metric, (SelectiveLoss, ListwiseLoss, PairwiseLoss, MulticlassLoss)):
        return LossMetric(metric)
    raise TypeError(f"metric must be a selboost metric (NDCG, RegionError, RegionDetection, LossMetric) or loss, "
                    f"got {metric!r}")


def xgboost_metric(metric):
    """A ``custom_metric=`` callable for ``xgboost.train``: ``f(preds, dmatrix) -> (name, value)``.

    With a custom objective XGBoost passes raw margins (including the DMatrix's base margin). Early
    stopping: XGBoost maximises metrics whose name starts with ``ndcg``; pass ``maximize=`` to
    ``xgboost.train`` or ``xgboost.callback.EarlyStopping`` otherwise.
    """
    return get_engine("xgboost").metric(metric)


def lightgbm_metric(metric):
    """A ``feval=`` callable for ``lightgbm.train``: ``f(preds, dataset) -> (name, value, higher_is_better)``.

    With a custom objective LightGBM passes raw scores, which include the Dataset's ``init_score``.
    Set ``"metric": "None"`` in the parameters so that only this metric drives early stopping.
    """
    return get_engine("lightgbm").metric(metric)
