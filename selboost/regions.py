"""Important regions: "scores in [low, high] matter ``strength`` times more than the rest", as a link.

The selective loss of a link h is, near its target, ``loss(z, y) ~ h'(y) (z - y)^2 / 2``: the
sensitivity h' is how many times more a unit of error counts than under square loss, whose h' is 1.
``region_link`` builds the link whose sensitivity is ``strength`` inside the region and 1 outside it,
in the targets' units, from the link catalogue (no new kernel):

- ``shape="piecewise"`` (the default): ``PiecewiseLinear`` with slope ``strength`` on [low, high] and
  1 elsewhere; exact, for any strength > 0 (below 1 the region matters less), and one-sided regions
  (``low=None`` or ``high=None``).
- ``shape="smooth"``: ``Identity() + w sum_k Sigmoid(c_k, width)`` with the centres c_k spread evenly
  over [low, high] and w such that h' is exactly ``strength`` at the region's middle m: h'(z) =
  1 + (strength - 1) P(z) / P(m) within 1 % of (strength - 1), P(z) = sigma((z - low)/width) -
  sigma((z - high)/width). The sensitivity peaks at the strength in the middle (never 0.1 % above it),
  is half way at the edges and rises smoothly over a few ``width`` there. Needs a finite region and
  strength >= 1 (the sigmoids' weights are positive).

Because the region is stated in the targets' units, the loss reaches it wherever the targets are; with
``quantiles=True``, ``low`` and ``high`` are quantile levels of the training targets, resolved once
(``RegionLoss.resolve``, which the estimators call on the targets they fit).
"""

from __future__ import annotations

import math

import warnings

import numpy as np

from selboost._validation import FLOAT32_MAX, as_float_array, sample_weights
from selboost.links import Identity, Link, PiecewiseLinear, Sigmoid, _positive, _real
from selboost.losses import SelectiveLoss

__all__ = ["region_link", "region_bounds", "weighted_quantile", "RegionLoss", "SHAPES"]

SHAPES = ("piecewise", "smooth")
#: the smooth shape's sigmoids are at most this far apart, in units of ``width``: their summed slopes
#: then stay within 1 % of (strength - 1) of the ideal curve (the sum approximates an integral over
#: the centres; closer spacing costs more sigmoids for little)
_SMOOTH_SPACING = 1.5
#: the smooth shape's default edge width, as a fraction of the region's length
_SMOOTH_DEFAULT_WIDTH = 0.1
#: most sigmoids in a smooth region (each costs one exponential per row and round)
_SMOOTH_MAX_TERMS = 64


def _end(value, name):
    """A region's end: a finite number, or None for an open side."""
    return None if value is None else _real(value, name, "region")


def _check_region(low, high, strength, shape, width, quantiles):
    """The validated (low, high, strength, shape, width, quantiles)."""
    low, high = _end(low, "low"), _end(high, "high")
    if low is None and high is None:
        raise ValueError("region: give low, high or both (a region that is everything is square loss)")
    if low is not None and high is not None and not low < high:
        raise ValueError(f"region: needs low < high, got low={low!r}, high={high!r}")
    if not isinstance(quantiles, (bool, np.bool_)):
        raise TypeError(f"region: quantiles must be True or False, got {quantiles!r}")
    if quantiles:
        for name, value in (("low", low), ("high", high)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"region: with quantiles=True, {name} is a quantile level in [0, 1], got {value!r}")
    strength = _positive(strength, "strength", "region")
    if strength > FLOAT32_MAX:
        # inside the region every hessian is the strength, and the engines take hessians as float32
        raise ValueError(f"region: strength must be at most float32's largest value, 3.4e38 (the engines take "
                         f"hessians, which are the strength inside the region, as float32), got {strength!r}")
    if shape not in SHAPES:
        raise ValueError(f"region: shape must be one of {list(SHAPES)}, got {shape!r}")
    if shape == "piecewise":
        if width is not None:
            raise ValueError("region: width is the smooth shape's edge width; shape='piecewise' has sharp edges")
    else:
        if low is None or high is None:
            raise ValueError("region: shape='smooth' needs both low and high; use shape='piecewise' for a "
                             "one-sided region")
        if strength < 1.0:
            raise ValueError(f"region: shape='smooth' needs strength >= 1, got {strength!r}; use "
                             "shape='piecewise' for a region that matters less")
        if width is not None:
            width = _positive(width, "width", "region")
    return low, high, strength, shape, width, bool(quantiles)


def weighted_quantile(y, level, sample_weight=None):
    """The smallest y whose (weighted) share of rows at or below it reaches ``level`` (the inverted
    CDF, NumPy's ``method="inverted_cdf"``): a row of weight 2 counts as that row twice."""
    order = np.argsort(y, kind="stable")
    weight = np.ones(y.size) if sample_weight is None else sample_weight[order]
    cumulative = np.cumsum(weight)
    index = int(np.searchsorted(cumulative, level * cumulative[-1], side="left"))
    return float(y[order][min(max(index, 0), y.size - 1)])


def _quantile_ends(low, high, y_train, sample_weight=None):
    if y_train is None:
        raise ValueError("region: quantiles=True needs the training targets (y=...) to resolve the levels")
    y = as_float_array(y_train, "y")
    weight = None if sample_weight is None else sample_weights(sample_weight, y.shape[0])
    if weight is not None and not weight.size:
        weight = None
    if weight is not None and not (weight > 0).any():
        raise ValueError("region: every sample weight is 0: no quantiles to resolve")
    ends = [None if level is None else weighted_quantile(y, level, weight) for level in (low, high)]
    if ends[0] is not None and ends[1] is not None and not ends[0] < ends[1]:
        samples = f"{y.size} sample" + ("" if y.size == 1 else "s")
        raise ValueError(f"region: the quantile levels ({low}, {high}) of the targets ({samples}) give the "
                         f"empty region [{ends[0]}, {ends[1]}] (tied targets): widen the levels")
    _check_share(low, high, ends, y, weight)
    return ends


def _check_share(low, high, ends, y, weight):
    """Tied targets at a resolved end put all their rows inside the closed region: a warning when it
    holds more than twice the share the levels ask for, which says so when it holds every training
    target (the loss is then square loss times the strength everywhere)."""
    asked = (1.0 if high is None else high) - (0.0 if low is None else low)
    inside = np.ones(y.size, dtype=bool)
    if ends[0] is not None:
        inside &= y >= ends[0]
    if ends[1] is not None:
        inside &= y <= ends[1]
    weight = np.ones(y.size) if weight is None else weight
    share = float(weight[inside].sum() / weight.sum())
    if share > 2.0 * asked:
        region = f"[{ends[0] if ends[0] is not None else '-inf'}, {ends[1] if ends[1] is not None else 'inf'}]"
        held = "every training target" if share >= 1.0 else f"{share:.1%} of the training targets"
        warnings.warn(f"region: the quantile levels ({low}, {high}) resolve to {region}, which holds {held} "
                      f"(tied targets at its end), not the {asked:.0%} the levels ask for: give the region in "
                      "the targets' units (quantiles=False) or other levels", UserWarning, stacklevel=4)


def region_bounds(low=None, high=None, *, quantiles=False, y=None, sample_weight=None):
    """(lo, hi) of the region in the targets' units, -inf / inf for an open side; with ``quantiles``,
    ``low`` and ``high`` are quantile levels of ``y`` (weighted by ``sample_weight``)."""
    low, high = _end(low, "low"), _end(high, "high")
    if quantiles:
        low, high = _quantile_ends(low, high, y, sample_weight)
    return (-math.inf if low is None else low, math.inf if high is None else high)


def region_link(low=None, high=None, *, strength, shape="piecewise", width=None, quantiles=False, y=None,
                sample_weight=None) -> Link:
    """The link whose sensitivity h' is ``strength`` on [low, high] and 1 elsewhere.

    Parameters
    ----------
    low, high : float or None
        The region's ends in the targets' units (None: open on that side), or, with ``quantiles=True``,
        quantile levels in [0, 1] of ``y``.
    strength : float
        How many times more an error inside counts than one outside (> 0; 1 is square loss).
    shape : {"piecewise", "smooth"}
        ``"piecewise"``: ``PiecewiseLinear(knots, slopes)`` with slopes 1, ``strength``, 1 (one-sided
        regions drop a side), so h'(z) = strength on [low, high), 1 elsewhere, exactly.
        ``"smooth"``: ``Identity() + w sum_k Sigmoid(c_k, width)``, K sigmoids evenly spaced by
        Delta = (high - low) / K <= 1.5 width, c_k = low + (k + 1/2) Delta, with the weight w that makes
        h' exactly ``strength`` at the region's middle m (about (strength - 1) Delta / (4 width P(m))),
        so that h'(z) = 1 + (strength - 1) P(z) / P(m) within 0.01 (strength - 1), where P(z) =
        sigma((z - low) / width) - sigma((z - high) / width): at most ``strength`` (to 0.1 %), reached
        in the middle, half way at the edges. Finite regions and strength >= 1 only.
    width : float, optional
        The smooth shape's edge width in target units (default a tenth of the region, where the
        sensitivity is within 1 % of ``strength`` over the middle fifth of the region); it is within
        1.5 % of (strength - 1) of ``strength`` 6 widths inside both edges, and of 1 as far outside.
    quantiles : bool
        ``low`` and ``high`` are quantile levels of ``y`` (resolved here, once): the inverted CDF, the
        smallest target whose share of rows at or below it reaches the level.
    y, sample_weight : array-like, optional
        The training targets and their weights (a row of weight 2 counts twice), for ``quantiles=True``.

    Returns
    -------
    Link
        With the loss ``H(z) - H(y) - (z - y) h(y)``: square loss outside the region, ``strength``
        times square loss inside it, and in between the integral of h' along the way.
    """
    low, high, strength, shape, width, quantiles = _check_region(low, high, strength, shape, width, quantiles)
    if quantiles:
        low, high = _quantile_ends(low, high, y, sample_weight)
    if shape == "piecewise":
        if low is None:
            return PiecewiseLinear(knots=(high,), slopes=(strength, 1.0))
        if high is None:
            return PiecewiseLinear(knots=(low,), slopes=(1.0, strength))
        return PiecewiseLinear(knots=(low, high), slopes=(1.0, strength, 1.0))
    length = high - low
    width = _SMOOTH_DEFAULT_WIDTH * length if width is None else width
    n_terms = max(1, math.ceil(length / (_SMOOTH_SPACING * width)))
    if n_terms > _SMOOTH_MAX_TERMS:
        raise ValueError(f"region: width {width!r} is too small for the region [{low}, {high}] (it would take "
                         f"{n_terms} sigmoids, at most {_SMOOTH_MAX_TERMS}); widen it or use shape='piecewise'")
    if strength == 1.0:
        return Identity()
    spacing = length / n_terms
    sigmoids = [Sigmoid(center=low + (k + 0.5) * spacing, scale=width) for k in range(n_terms)]
    # the weight that makes h' exactly the strength at the region's middle: the sum's plateau tops out
    # below strength - 1 (by 1 - (sigma(L / 2w) - sigma(-L / 2w)), 1.3 % at the default width) otherwise
    middle = np.array([0.5 * (low + high)])
    weight = (strength - 1.0) / sum(float(term.dh(middle)[0]) for term in sigmoids)
    link = Identity()
    for term in sigmoids:
        link = link + weight * term
    return link


class RegionLoss(SelectiveLoss):
    """``SelectiveLoss(region_link(low, high, strength=..., shape=..., width=...))``: errors on targets in
    [low, high] count ``strength`` times more than elsewhere (see ``region_link`` for the shapes).

    loss(z, y) = H(z) - H(y) - (z - y) h(y), grad = h(z) - h(y), hess = max(h'(z), hess_min), with h
    the region link: h' = strength inside, 1 outside.

    With ``quantiles=True``, ``low`` and ``high`` are quantile levels of the training targets: the
    estimators resolve them on the targets they fit (``resolve``); a loss used as ``obj=`` must be
    resolved first, ``RegionLoss(0.9, quantiles=True).resolve(y_train)``, so that evaluation data never
    moves the region. Its parameters are grid-searchable (``loss__strength``).

    The engines take gradients and hessians as float32: a strength beyond float32's range is refused
    here, and one whose gradients on the training data exceed it (about strength times the distance
    from a score to its target) when training starts.
    """

    scale_names = "strength (or the sample weights)"

    def __init__(self, low=None, high=None, *, strength=10.0, shape="piecewise", width=None, quantiles=False,
                 hess_min=1e-6):
        self.low, self.high, self.strength, self.shape, self.width, self.quantiles = _check_region(
            low, high, strength, shape, width, quantiles)
        link = None if self.quantiles else region_link(
            self.low, self.high, strength=self.strength, shape=self.shape, width=self.width)
        super().__init__(Identity() if link is None else link, hess_min=hess_min)
        if link is None:
            self.link = None  # nothing to evaluate until the levels are resolved

    def __repr__(self):
        return (f"RegionLoss(low={self.low!r}, high={self.high!r}, strength={self.strength!r}, "
                f"shape={self.shape!r}, width={self.width!r}, quantiles={self.quantiles!r})")

    @property
    def bounds(self):
        """(lo, hi) in the targets' units (-inf / inf for an open side); a ValueError while unresolved."""
        self._require_resolved()
        return region_bounds(self.low, self.high)

    def _require_resolved(self):
        if self.quantiles:
            raise ValueError("RegionLoss(quantiles=True) gives the region as quantile levels: resolve it on the "
                             "training targets first, loss.resolve(y_train) (the estimators do this at fit)")

    def resolve(self, y, sample_weight=None):
        """The loss with the quantile levels turned into the targets' units, from the training targets
        ``y`` and their weights (itself when the region is already in units)."""
        if not self.quantiles:
            return self
        low, high = _quantile_ends(self.low, self.high, y, sample_weight)
        return RegionLoss(low, high, strength=self.strength, shape=self.shape, width=self.width,
                          hess_min=self.hess_min)

    def for_targets(self, y, sample_weight=None):
        return self.resolve(y, sample_weight)

    for_targets.__doc__ = resolve.__doc__

    def bind(self, y_true, sample_weight=None):
        self._require_resolved()
        return super().bind(y_true, sample_weight)
