"""Relevance functions and the evaluation metrics of imbalanced regression, and the link and weights
that follow a relevance function.

A *relevance function* phi: y -> [0, 1] says how much a target value matters (Ribeiro 2011; Torgo &
Ribeiro 2007). It is a piecewise cubic Hermite interpolant through control points (x_k, phi_k, m_k),
by default the ones the adjusted boxplot of the training targets gives (Hubert & Vandervieren 2008):
relevance 0 at the median and 1 at the boxplot's fences. It follows IRon's ``phi`` / ``phi.control``
(Ribeiro & Moniz 2020; the R package's ``R/phi.R``, ``src/pchip.c``) to the letter:

- control points (``relevance``, ``extr_type="both"``, ``asym=True``): (fence_low, 1, 0),
  (median, 0, 0), (fence_high, 1, 0), with the median and the hinges of Tukey's five-number summary
  (R's ``fivenum``), IQR = upper hinge - lower hinge, and the fences of ``robustbase::adjboxStats``:
  for MC >= 0, (Q1 - coef e^{-4 MC} IQR, Q3 + coef e^{3 MC} IQR), for MC < 0,
  (Q1 - coef e^{-3 MC} IQR, Q3 + coef e^{4 MC} IQR), MC the medcouple, coef = 1.5. The points are the
  *fences*, not the whiskers (the most extreme targets inside them), and with ``asym=True`` IRon puts
  relevance 1 at both fences whether or not any target lies beyond them.
- ``extr_type="high"`` / ``"low"``: the other side's fence is replaced by (min(y), 0, 0) /
  (max(y), 0, 0), so that side has relevance 0.
- ``asym=False``: the standard boxplot (R's ``boxplot.stats``): the control point of a side is its
  whisker, the most extreme target within Q +- coef IQR, and only when some target lies beyond it;
  otherwise (min(y) or max(y), 0, 0).
- ``extr_type="observed"`` (not in IRon): the adjusted boxplot's fences, but only on the sides where
  some training target lies beyond the fence; the other side gets relevance 0 (only the tails that hold
  extremes count).
- Slopes: given (third column), or, for two-column control points, 0 at the ends and the mean of the
  two adjacent secants inside; then Fritsch & Carlson's (1980) monotonicity fix, exactly as IRon's
  ``pchip_slope_monoFC`` applies it (left to right, in place). Beyond the end points IRon extends
  phi linearly with the end slope: constant for every automatic phi and for two-column control points;
  for given non-zero end slopes we do the same and clip phi to [0, 1], which IRon does not.

Where this differs from IRon: robustbase's medcouple is computed with relative tolerances 1e-14 for
ties at the median and, for n <= 100, as the mean of mc(x) and -mc(-x) (the usual median of the
kernel values); for n > 100 as the floor(N/2)+1-th largest of the N kernel values (the lower of the
two middle values when N is even). ``medcouple`` reproduces both rules with exact comparisons. A point
that coincides with the next one (the median equal to min(y) for ``extr_type="high"``) is dropped, as
UBL's ``phi.extremes`` does; IRon would divide by zero. robustbase "huberizes" targets farther than
1e11 MADs from the median before the medcouple; we do not.

Metrics (``sera``, ``sera_symmetric``, ``utility``, ``utility_precision`` / ``_recall`` / ``_f1``)
take the relevance function of the *training* targets: ``phi = relevance(y_train)``, then
``sera(y_test, pred, relevance=phi)``. ``relevance=None`` computes phi from the targets being
evaluated, as IRon's ``phi(y)`` without parameters does.
"""

from __future__ import annotations

import math

import numpy as np

from selboost._validation import as_float_array, check_choice, sample_weights
from selboost.links import Link, PiecewiseLinear, _positive
from selboost.losses import SelectiveLoss
from selboost._metric_base import _Metric, _Part, _Prepared

__all__ = [
    "EXTR_TYPES",
    "Relevance",
    "relevance",
    "medcouple",
    "adjusted_boxplot",
    "sera",
    "sera_symmetric",
    "utility",
    "utility_precision",
    "utility_recall",
    "utility_f1",
    "SERA",
    "UtilityScore",
    "relevance_link",
    "relevance_weights",
    "RelevanceLoss",
]

#: which tails of the targets are relevant
EXTR_TYPES = ("both", "high", "low", "observed")
#: the adjusted boxplot's exponents (robustbase's defaults a = -4, b = 3)
_ADJBOX_A, _ADJBOX_B = -4.0, 3.0
#: below this many candidate kernel values the medcouple's selection sorts them directly
_MC_DIRECT = 200_000


# ---------------------------------------------------------------- the medcouple and the boxplots


def fivenum(y):
    """Tukey's five-number summary as R's ``fivenum``: min, lower hinge, median, upper hinge, max."""
    x = np.sort(as_float_array(y, "y"))
    n = x.size
    n4 = math.floor((n + 3) / 2) / 2
    d = np.array([1.0, n4, (n + 1) / 2, n + 1 - n4, n]) - 1.0
    return 0.5 * (x[np.floor(d).astype(int)] + x[np.ceil(d).astype(int)])


class _Kernel:
    """The medcouple's kernel matrix h(i, j) for z+_i >= 0 >= z-_j (both sorted decreasingly), which
    decreases along rows and columns: (z+_i + z-_j) / (z+_i - z-_j), or, for two values at the median,
    sign(p - 1 - i - j) (Hubert & Vandervieren's convention, p = #z+)."""

    def __init__(self, x):
        z = np.sort(x)[::-1] - np.median(x)
        self.plus = z[z >= 0.0]
        self.minus = z[z <= 0.0]
        self.p, self.q = self.plus.size, self.minus.size

    def __call__(self, i, j):
        a, b = self.plus[i], self.minus[j]
        tie = a == b  # only both 0, since a >= 0 >= b
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (a + b) / (a - b)
        return np.where(tie, np.sign(self.p - 1 - i - j).astype(float), value)

    def count_above(self, t, strict):
        """Per row, how many kernel values exceed t (``strict``) or are at least t."""
        lo = np.zeros(self.p, dtype=np.int64)
        hi = np.full(self.p, self.q, dtype=np.int64)
        rows = np.arange(self.p)
        while True:
            active = lo < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            value = self(rows[active], np.minimum(mid[active], self.q - 1))
            above = value > t if strict else value >= t
            lo[active] = np.where(above, mid[active] + 1, lo[active])
            hi[active] = np.where(above, hi[active], mid[active])

    def kth_largest(self, k):
        """The k-th largest kernel value (1-based), by shrinking per-row candidate ranges [L, R) around a
        weighted median of the rows' middle candidates (Johnson & Mizoguchi 1978): entries left of L
        exceed the answer, entries from R on fall below it."""
        left = np.zeros(self.p, dtype=np.int64)
        right = np.full(self.p, self.q, dtype=np.int64)
        rows = np.arange(self.p)
        while True:
            count = right - left
            if count.sum() <= _MC_DIRECT:
                keep = count > 0
                r = np.repeat(rows[keep], count[keep])
                starts = np.repeat(left[keep] - np.concatenate([[0], np.cumsum(count[keep])[:-1]]), count[keep])
                c = np.arange(r.size) + starts
                values = np.sort(self(r, c))[::-1]
                return float(values[k - int(left.sum()) - 1])
            keep = count > 0
            middle = self(rows[keep], (left[keep] + right[keep]) // 2)
            order = np.argsort(middle)
            weight = np.cumsum(count[keep][order])
            pivot = middle[order][np.searchsorted(weight, 0.5 * weight[-1])]
            above = self.count_above(pivot, strict=True)
            at_least = self.count_above(pivot, strict=False)
            if above.sum() >= k:
                right = np.minimum(right, above)
            elif at_least.sum() >= k:
                return float(pivot)
            else:
                left = np.maximum(left, at_least)


def medcouple(y):
    """The medcouple (Brys, Hubert & Struyf 2004) as ``robustbase::mc`` gives it: the median of
    h(x_i, x_j) = ((x_j - med) - (med - x_i)) / (x_j - x_i) over x_i <= med <= x_j. For n <= 100 the
    usual median of the kernel values (robustbase averages mc(x) and -mc(-x)); for larger n the
    floor(N/2)+1-th largest of the N values; -1 or 1 when the maximum or the minimum is the median.
    O(n log^2 n) time."""
    x = as_float_array(y, "y")
    if x.size < 3:
        return 0.0
    med = np.median(x)
    if x.max() == med:
        return -1.0
    if x.min() == med:
        return 1.0
    kernel = _Kernel(x)
    total = kernel.p * kernel.q
    upper = kernel.kth_largest(total // 2 + 1)
    if x.size > 100 or total % 2:
        return upper
    return 0.5 * (upper + kernel.kth_largest(total // 2))


def adjusted_boxplot(y, coef=1.5):
    """``robustbase::adjboxStats(y, coef)``: (fivenum with the whiskers, (low fence, high fence)).

    The fences are Q1 - coef e^{-4 MC} IQR and Q3 + coef e^{3 MC} IQR for MC >= 0 (e^{-3 MC} and e^{4 MC}
    for MC < 0); the whiskers (first and last of the five numbers) are the most extreme targets
    within the fences."""
    x = as_float_array(y, "y")
    stats = fivenum(x)
    iqr = stats[3] - stats[1]
    mc = medcouple(x)
    if mc >= 0:
        fence = (stats[1] - coef * math.exp(_ADJBOX_A * mc) * iqr, stats[3] + coef * math.exp(_ADJBOX_B * mc) * iqr)
    else:
        fence = (stats[1] - coef * math.exp(-_ADJBOX_B * mc) * iqr, stats[3] + coef * math.exp(-_ADJBOX_A * mc) * iqr)
    out = (x < fence[0]) | (x > fence[1])
    if out.any():
        stats[[0, 4]] = x[~out].min(), x[~out].max()
    return stats, fence, out


def _standard_boxplot(x, coef):
    """R's ``boxplot.stats``: fivenum with the whiskers, and which targets lie beyond Q -+ coef IQR."""
    stats = fivenum(x)
    iqr = stats[3] - stats[1]
    out = (x < stats[1] - coef * iqr) | (x > stats[3] + coef * iqr)
    if out.any():
        stats[[0, 4]] = x[~out].min(), x[~out].max()
    return stats, out


def _automatic_points(y, extr_type, coef, asym):
    """IRon's ``phi.extremes`` control points (x, phi, slope) for the targets ``y``."""
    x = as_float_array(y, "y")
    if x.size == 0:
        raise ValueError("relevance: needs at least one target")
    low_end, high_end = float(x.min()), float(x.max())
    if asym:
        stats, fence, out = adjusted_boxplot(x, coef)
        low = extr_type in ("both", "low") or (extr_type == "observed" and (x < fence[0]).any())
        high = extr_type in ("both", "high") or (extr_type == "observed" and (x > fence[1]).any())
        low_point, high_point = fence
    else:
        stats, out = _standard_boxplot(x, coef)
        low = extr_type != "high" and (x[out] < stats[0]).any()
        high = extr_type != "low" and (x[out] > stats[4]).any()
        low_point, high_point = stats[0], stats[4]
    points = [(float(low_point), 1.0, 0.0) if low else (low_end, 0.0, 0.0), (float(stats[2]), 0.0, 0.0),
              (float(high_point), 1.0, 0.0) if high else (high_end, 0.0, 0.0)]
    # a point on top of the next (the median at the minimum): UBL drops it
    points = [point for k, point in enumerate(points) if k == 0 or point[0] != points[k - 1][0]]
    if any(b[0] <= a[0] for a, b in zip(points, points[1:])) or len(points) < 2:
        raise ValueError(f"relevance: the targets' boxplot gives no increasing control points "
                         f"({[p[0] for p in points]}; tied targets, zero interquartile range?): give "
                         "control_points")
    return np.array(points)


# ---------------------------------------------------------------- the relevance function


def _control_array(control_points):
    """Validated control points as an (n, 3) array (slopes filled in for two columns, as IRon)."""
    points = np.array(control_points, dtype=float)
    if points.ndim != 2 or points.shape[1] not in (2, 3) or points.shape[0] < 2:
        raise ValueError("relevance: control_points must be rows (x, phi) or (x, phi, slope), at least two, "
                         f"got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("relevance: control_points must be finite")
    if np.any(np.diff(points[:, 0]) <= 0):
        raise ValueError(f"relevance: the control points' x must be strictly increasing, got {points[:, 0]}")
    if np.any((points[:, 1] < 0) | (points[:, 1] > 1)):
        raise ValueError(f"relevance: phi maps into [0, 1], got control values {points[:, 1]}")
    if points.shape[1] == 2:
        secant = np.diff(points[:, 1]) / np.diff(points[:, 0])
        slopes = np.concatenate([[0.0], 0.5 * (secant[1:] + secant[:-1]), [0.0]])
        points = np.column_stack([points, slopes])
    return points


def _fritsch_carlson(m, delta):
    """IRon's ``pchip_slope_monoFC``: Fritsch & Carlson's fix of the slopes, left to right, in place."""
    m = m.copy()
    for k in range(delta.size):
        s = delta[k]
        if s == 0.0:
            m[k] = m[k + 1] = 0.0
            continue
        alpha, beta = m[k] / s, m[k + 1] / s
        if m[k] != 0.0 and alpha < 0:
            m[k] = -m[k]
            alpha = m[k] / s
        if m[k + 1] != 0.0 and beta < 0:
            m[k + 1] = -m[k + 1]
            beta = m[k + 1] / s
        a2b3, ab23 = 2 * alpha + beta - 3, alpha + 2 * beta - 3
        if a2b3 > 0 and ab23 > 0 and alpha * (a2b3 + ab23) < a2b3 * a2b3:
            tau = 3 * s / math.sqrt(alpha * alpha + beta * beta)
            m[k], m[k + 1] = tau * alpha, tau * beta
    return m


class Relevance:
    """A relevance function phi: the piecewise cubic Hermite interpolant through control points.

    On [x_k, x_{k+1}], with s = z - x_k and L_k = x_{k+1} - x_k, delta_k = (phi_{k+1} - phi_k) / L_k:

        phi(z) = phi_k + m_k s + c_k s^2 + d_k s^3,
        c_k = (3 delta_k - 2 m_k - m_{k+1}) / L_k,   d_k = (m_k - 2 delta_k + m_{k+1}) / L_k^2,

    with the slopes m after Fritsch & Carlson's monotonicity fix (IRon's ``pchip_set``); beyond the
    ends phi continues linearly with the end slope (constant when it is 0), clipped to [0, 1].

    Build one with ``relevance(y_train)`` (from the targets' boxplot) or ``Relevance(control_points)``;
    call it on any targets: ``phi(y_test)``.

    Parameters
    ----------
    control_points : array-like of shape (n, 2) or (n, 3)
        Rows (x, phi) or (x, phi, slope), x strictly increasing, phi in [0, 1]. With two columns the
        slopes are 0 at the ends and the mean of the adjacent secants inside (IRon's ``phi.range``).
    """

    def __init__(self, control_points):
        points = _control_array(control_points)
        self.control_points = points
        x, a = points[:, 0], points[:, 1]
        length = np.diff(x)
        delta = np.diff(a) / length
        m = _fritsch_carlson(points[:, 2], delta)
        self.x, self.a, self.m = x, a, m
        self.c = (3 * delta - 2 * m[:-1] - m[1:]) / length
        self.d = (m[:-1] - 2 * delta + m[1:]) / (length * length)

    def __repr__(self):
        return f"Relevance(control_points={self.control_points.tolist()!r})"

    def _locate(self, z):
        """(z, j, inner, s): j the segment of each z as IRon's findInterval gives it (-1 before x_0,
        n - 1 from x_{n-1} on, where phi continues linearly with the end slope), ``inner`` j clipped to
        a cubic segment and s the offset from its start."""
        z = np.asarray(z, dtype=float)
        j = np.searchsorted(self.x, z, side="right") - 1
        inner = np.clip(j, 0, self.x.size - 2)
        return z, j, inner, z - self.x[inner]

    def _unclipped(self, z):
        z, j, inner, s = self._locate(z)
        value = self.a[inner] + s * (self.m[inner] + s * (self.c[inner] + s * self.d[inner]))
        value = np.where(j < 0, self.a[0] + self.m[0] * (z - self.x[0]), value)
        return np.where(j >= self.x.size - 1, self.a[-1] + self.m[-1] * (z - self.x[-1]), value)

    def __call__(self, y):
        """phi(y), in [0, 1]."""
        return np.clip(self._unclipped(y), 0.0, 1.0)

    def derivative(self, y):
        """phi'(y) (0 where the linear extension is clipped)."""
        z, j, inner, s = self._locate(y)
        value = self.m[inner] + s * (2 * self.c[inner] + 3 * s * self.d[inner])
        value = np.where(j < 0, self.m[0], np.where(j >= self.x.size - 1, self.m[-1], value))
        raw = self._unclipped(z)
        return np.where((raw < 0) | (raw > 1), 0.0, value)

    def segment_integral(self, k, s):
        """int_{x_k}^{x_k + s} phi on segment k (s in [0, L_k]): phi_k s + m_k s^2/2 + c_k s^3/3 + d_k s^4/4."""
        return s * (self.a[k] + s * (self.m[k] / 2 + s * (self.c[k] / 3 + s * self.d[k] / 4)))

    @property
    def end_slopes(self):
        return float(self.m[0]), float(self.m[-1])


def _resolve_relevance(spec, y=None):
    """A ``Relevance`` from a Relevance (itself), control points, or None (from the targets ``y``)."""
    if isinstance(spec, Relevance):
        return spec
    if spec is None:
        if y is None:
            raise ValueError("relevance: give a relevance function, control points or the targets")
        return relevance(y)
    return Relevance(spec)


def relevance(y, *, control_points=None, extr_type="both", coef=1.5, asym=True):
    """The relevance function of the targets ``y`` (IRon's ``phi.control`` + ``phi``), as a ``Relevance``.

    Parameters
    ----------
    y : array-like
        The (training) targets it is made from; call the result on any other targets.
    control_points : array-like of shape (n, 2) or (n, 3), optional
        User control points (IRon's ``method="range"``); then ``y`` is only checked, as in IRon.
    extr_type : {"both", "high", "low", "observed"}
        Which tails are relevant (see the module's notes); ``"observed"``: those where a target lies
        beyond the adjusted boxplot's fence.
    coef : float
        The boxplot's coefficient (1.5).
    asym : bool
        True: the adjusted boxplot (medcouple), relevance 1 at its fences; False: the standard boxplot,
        relevance 1 at a whisker when targets lie beyond it.

    Returns
    -------
    Relevance
        phi(z) in [0, 1]: 0 at the median, 1 at the fences, a monotone cubic in between.
    """
    extr_type = check_choice(extr_type, "extr_type", EXTR_TYPES)
    coef = _positive(coef, "coef", "relevance")
    if control_points is not None:
        return Relevance(control_points)
    if not asym and extr_type == "observed":
        raise ValueError("relevance: extr_type='observed' is for asym=True (the standard boxplot already "
                         "keeps only the tails that hold outliers)")
    return Relevance(_automatic_points(y, extr_type, coef, bool(asym)))


# ---------------------------------------------------------------- SERA


def _pairs(y_true, y_pred):
    y = as_float_array(y_true, "y_true")
    pred = as_float_array(y_pred, "y_pred")
    if pred.shape != y.shape:
        raise ValueError(f"y_pred has {pred.shape[0]} rows, y_true has {y.shape[0]}")
    return y, pred


def _weights(sample_weight, n):
    weight = sample_weights(sample_weight, n)
    return weight if weight.size else np.ones(n)


def sera(y_true, y_pred, relevance=None, sample_weight=None):
    """SERA, the squared error-relevance area (Ribeiro & Moniz 2020):

        SERA = int_0^1 SER_t dt,   SER_t = sum_{i: phi(y_i) >= t} w_i (pred_i - y_i)^2,

    computed exactly as sum_i w_i phi(y_i) (pred_i - y_i)^2: row i counts in SER_t for every
    t <= phi(y_i), a length phi(y_i) of [0, 1]. IRon's ``sera`` takes the trapezoid rule over
    t = 0, 0.001, ..., 1 instead (within 0.001 of the total squared error of the rows it misses).

    Parameters
    ----------
    y_true, y_pred : array-like
    relevance : Relevance, control points, array of phi(y_true), or None
        phi of the training targets (``relevance(y_train)``); an array of shape (n,) gives phi(y_i)
        directly (IRon's ``phi.trues``); None: phi from ``y_true`` itself.
    sample_weight : array-like, optional
        w_i (1 by default; IRon has none).
    """
    y, pred = _pairs(y_true, y_pred)
    given = None if relevance is None or isinstance(relevance, Relevance) else np.asarray(relevance, float)
    if given is not None and given.ndim == 1:
        if given.shape != y.shape:
            raise ValueError(f"relevance values: {given.shape[0]} for {y.shape[0]} targets")
        phi_y = given
    else:
        phi_y = _resolve_relevance(relevance, y)(y)
    return float(np.sum(_weights(sample_weight, y.size) * phi_y * (pred - y) ** 2))


def sera_symmetric(y_true, y_pred, relevance=None, sample_weight=None):
    """SERA that also counts false alarms: a row counts at threshold t when its target *or* its
    prediction is at least that relevant,

        int_0^1 sum_{i: max(phi(y_i), phi(pred_i)) >= t} w_i (pred_i - y_i)^2 dt
            = sum_i w_i max(phi(y_i), phi(pred_i)) (pred_i - y_i)^2.

    ``sera`` weighs an error by the relevance of the target only, so a common target predicted into a
    relevant range costs nothing more than square loss scaled by phi(y_i) ~ 0; here it costs as much
    as missing a target of that relevance. Parameters as for ``sera`` (``relevance`` must be a
    function or control points, since phi(pred) is needed)."""
    y, pred = _pairs(y_true, y_pred)
    phi = _resolve_relevance(relevance, y)
    weight = np.maximum(phi(y), phi(pred))
    return float(np.sum(_weights(sample_weight, y.size) * weight * (pred - y) ** 2))


# ---------------------------------------------------------------- utility-based precision and recall


class _Bumps:
    """The "bumps" of a relevance function (IRon ``src/bump.c``, ``bumps_set``): from the control points
    whose slope is 0, the left minimum ``bleft``, the maximum ``bmax`` and the loss tolerance ``bloss``
    of each bump, from which the benefit and cost tolerances of a target are read."""

    def __init__(self, phi: Relevance):
        x, a, m = phi.x, phi.a, phi.m
        n_points = x.size
        bleft = np.zeros(n_points + 1)
        bmax = np.zeros(n_points + 1)
        bloss = np.zeros(n_points + 1)
        bleft[0], bmax[0], bloss[0] = -np.inf, -np.inf, np.inf
        critical = [i for i in range(n_points) if m[i] == 0.0]
        if not critical:
            raise ValueError("utility: the relevance function has no control point with slope 0 (no bump)")
        n = 0
        in_bump = True
        total, count = x[critical[0]], 1
        for i in range(len(critical) - 1):
            d1 = a[critical[i + 1]] - a[critical[i]]
            if d1 == 0:
                total += x[critical[i + 1]]
                count += 1
                continue
            if d1 < 0 and in_bump:
                bmax[n] = total / count
                if np.isfinite(bmax[n]) and np.isfinite(bleft[n]):
                    bloss[n] = abs(bmax[n] - bleft[n])
                in_bump = False
            elif d1 > 0 and (not in_bump or n == 0):
                n += 1
                bleft[n] = total / count
                self._close(bleft, bmax, bloss, n)
                in_bump = True
            total, count = x[critical[i + 1]], 1
        if n > 0:
            if in_bump:
                bmax[n] = total / count
                if np.isfinite(bmax[n]) and np.isfinite(bleft[n]):
                    bloss[n] = 2 * abs(bmax[n] - bleft[n])
            else:
                n += 1
                bleft[n] = total / count
                bmax[n] = np.inf
                self._close(bleft, bmax, bloss, n)
            # phi is constant beyond the control points, and so is the tolerance
            if not np.isfinite(bmax[0]):
                bloss[0] = bloss[1]
            if not np.isfinite(bmax[n]):
                bloss[n] = bloss[n - 1]
        else:
            raise ValueError("utility: the relevance function has no bump (it is constant): utility-based "
                             "metrics need relevant and irrelevant values")
        self.n = n + 1
        self.bleft, self.bmax, self.bloss = bleft[:self.n], bmax[:self.n], bloss[:self.n]

    @staticmethod
    def _close(bleft, bmax, bloss, n):
        if np.isfinite(bmax[n - 1]) and np.isfinite(bleft[n]):
            delta = abs(bmax[n - 1] - bleft[n])
            bloss[n - 1] = 2 * delta if delta < bloss[n - 1] else 2 * bloss[n - 1]

    def tolerances(self, y, pred):
        """(l_B, l_C) per row: IRon's ``benefcost_lin``."""
        n = self.n
        i = np.searchsorted(self.bleft, y, side="right") if n > 1 else np.ones(y.size, dtype=np.int64)
        i = np.where(i > 0, i - 1, i)
        below = pred <= y
        bloss = self.bloss[i]
        nxt = np.minimum(i + 1, n - 1)
        prev = np.maximum(i - 1, 0)
        with np.errstate(invalid="ignore"):
            benefit = np.where(below, np.where((i > 0) & np.isfinite(self.bleft[i]), np.abs(y - self.bleft[i]), np.inf),
                               np.where((i + 1 < n) & np.isfinite(self.bleft[nxt]), np.abs(y - self.bleft[nxt]),
                                        np.inf))
            cost = np.where(below, np.where((i > 0) & np.isfinite(self.bmax[prev]), np.abs(y - self.bmax[prev]), np.inf),
                            np.where((i + 1 < n) & np.isfinite(self.bmax[nxt]), np.abs(y - self.bmax[nxt]), np.inf))
        return np.where(benefit < bloss, benefit, bloss), np.where(cost < bloss, cost, bloss)


def _utility(phi, y, pred, p):
    lb, lc = _Bumps(phi).tolerances(y, pred)
    loss = np.abs(y - pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        benefit = np.where((lb == 0) | (loss > lb), 0.0, 1.0 - loss / lb)
        cost = np.where((lc == 0) | (loss > lc), 1.0, loss / lc)
    phi_y = phi(y)
    joint = p * phi_y + (1.0 - p) * phi(pred)
    return phi_y * benefit - joint * cost, phi_y


def _check_p(p):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"utility: p must lie in [0, 1], got {p!r}")
    return p


def utility(y_true, y_pred, relevance=None, p=0.5):
    """The utility U^p_phi(pred, y) of each prediction (Torgo & Ribeiro 2007; Ribeiro 2011), in [-1, 1]:

        U = B - C,   B = phi(y) (1 - Gamma_B),   C = phi^p(pred, y) Gamma_C,
        phi^p(pred, y) = p phi(y) + (1 - p) phi(pred),
        Gamma_B = |pred - y| / l_B (1 beyond l_B),   Gamma_C = |pred - y| / l_C (1 beyond l_C),

    with the tolerances l_B and l_C from the "bumps" of phi, as IRon's C code computes them
    (``src/util.c`` ``util_value`` / ``benefcost_lin``, ``src/bump.c`` ``bumps_set``). For the
    automatic phi (relevance 1 at the fences L < H, 0 at the median M): a target y >= M has
    l_B = l_C = 2 (H - M) when over-predicted, and l_B = min(y - M, 2 (H - M)), l_C = min(y - L,
    2 (H - M)) when under-predicted (mirrored below M). IRon evaluates phi(pred) at y (a slip in
    ``util_core``); here phi(pred) is phi at the prediction, as the definition says."""
    y, pred = _pairs(y_true, y_pred)
    return _utility(_resolve_relevance(relevance, y), y, pred, _check_p(p))[0]


#: utility-based precision and recall: UBL's code or the published definition
DEFINITIONS = ("ubl", "paper")


def _utility_scores(y, pred, phi, threshold, p, beta, definition):
    u, phi_y = _utility(phi, y, pred, p)
    phi_pred = phi(pred)
    predicted, relevant = phi_pred > threshold, phi_y > threshold
    if definition == "ubl":
        hits_p, hits_r = predicted, relevant
        recall_den = np.sum(1.0 + phi_pred[relevant])
    else:
        hits_p = hits_r = predicted & relevant
        recall_den = np.sum(1.0 + phi_y[relevant])
    precision_den = np.sum(1.0 + phi_pred[predicted])
    precision = float(np.sum(1.0 + u[hits_p]) / precision_den) if predicted.any() else 0.0
    if not relevant.any():
        raise ValueError(f"utility recall: no target has relevance above {threshold}: it is undefined")
    recall = float(np.sum(1.0 + u[hits_r]) / recall_den)
    both = beta * beta * precision + recall
    f = float((1 + beta * beta) * precision * recall / both) if both > 0 else 0.0
    return precision, recall, f


def _check_scores(threshold, p, beta, definition):
    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"utility: threshold must lie in [0, 1), got {threshold!r}")
    return threshold, _check_p(p), _positive(beta, "beta", "utility"), check_choice(definition, "definition",
                                                                                    DEFINITIONS)


def _scores(y_true, y_pred, relevance, threshold, p, beta, definition):
    threshold, p, beta, definition = _check_scores(threshold, p, beta, definition)
    y, pred = _pairs(y_true, y_pred)
    return _utility_scores(y, pred, _resolve_relevance(relevance, y), threshold, p, beta, definition)


_SCORES_DOC = """

    With U_i = U^p_phi(pred_i, y_i) (``utility``), and t = ``threshold`` (UBL's ``thr``, 0.5),
    following UBL's ``EvalRegressMetrics`` (``R/metrics.R``: ``precPhiRegress``, ``recPhiRegress``,
    ``FPhiRegress``; Branco, Torgo & Ribeiro):

        precision = sum_{i: phi(pred_i) > t} (1 + U_i) / sum_{i: phi(pred_i) > t} (1 + phi(pred_i)),
        recall    = sum_{i: phi(y_i) > t} (1 + U_i)    / sum_{i: phi(y_i) > t} (1 + phi(pred_i)),
        F_beta    = (1 + beta^2) precision recall / (beta^2 precision + recall).

    ``definition="paper"``: Torgo & Ribeiro (2009), Branco et al. (2016): numerators over the rows
    with both phi(y_i) > t and phi(pred_i) > t, and the recall's denominator sum (1 + phi(y_i)).
    precision is 0 when no prediction is relevant; recall raises a ValueError when no target is.
    UBL takes U from an interpolated utility surface; here it is U^p_phi."""


def utility_precision(y_true, y_pred, relevance=None, threshold=0.5, p=0.5, definition="ubl"):
    """Utility-based precision for regression (higher is better)."""
    return _scores(y_true, y_pred, relevance, threshold, p, 1.0, definition)[0]


def utility_recall(y_true, y_pred, relevance=None, threshold=0.5, p=0.5, definition="ubl"):
    """Utility-based recall for regression (higher is better)."""
    return _scores(y_true, y_pred, relevance, threshold, p, 1.0, definition)[1]


def utility_f1(y_true, y_pred, relevance=None, threshold=0.5, p=0.5, beta=1.0, definition="ubl"):
    """Utility-based F_beta for regression (higher is better; F1 by default)."""
    return _scores(y_true, y_pred, relevance, threshold, p, beta, definition)[2]


for _function in (utility_precision, utility_recall, utility_f1):
    _function.__doc__ += _SCORES_DOC


# ---------------------------------------------------------------- engine metrics


class _RelevanceMetric(_Metric):
    def __init__(self, relevance=None, link=None):
        super().__init__()
        if relevance is not None and not isinstance(relevance, Relevance):
            relevance = Relevance(relevance)
        self.relevance = relevance
        if link is not None and not isinstance(link, Link):
            raise TypeError(f"link must be a selboost link or None, got {link!r}")
        self.link = link

    def _prepared(self, y, group_weight, value):
        if group_weight is not None:
            raise ValueError(f"{type(self).__name__} is a regression metric: it takes no query groups")
        y = as_float_array(y, "y")
        phi = _resolve_relevance(self.relevance, y)
        link = self.link
        return _Prepared(lambda raw: value(y, phi, np.asarray(raw, float) if link is None
                                           else link.h(np.asarray(raw, float))))


class SERA(_RelevanceMetric):
    """SERA (``sera``) or, with ``symmetric=True``, its false-alarm-counting counterpart
    (``sera_symmetric``) as an engine metric; lower is better. Named ``sera`` / ``sera_symmetric``.

    ``relevance``: the training targets' phi (``relevance(y_train)``) or control points; None: phi of
    each evaluation set's own targets. ``link``: predictions are ``link.h(raw)`` when given.
    """

    higher_is_better = False

    def __init__(self, relevance=None, symmetric=False, link=None):
        super().__init__(relevance, link)
        self.symmetric = bool(symmetric)
        self.name = "sera_symmetric" if self.symmetric else "sera"

    def __repr__(self):
        return f"SERA(relevance={self.relevance!r}, symmetric={self.symmetric!r}, link={self.link!r})"

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        y_array = as_float_array(y, "y")
        weight = _weights(sample_weight, y_array.size)

        def value(y, phi, pred):
            scale = np.maximum(phi(y), phi(pred)) if self.symmetric else phi_y
            return float(np.sum(weight * scale * (pred - y) ** 2))

        phi_y = _resolve_relevance(self.relevance, y_array)(y_array)
        return self._prepared(y_array, group_weight, value)

    def check_parts(self):
        if self.relevance is None:
            raise ValueError("SERA on parts of the data (Dask) needs relevance= (relevance(y_train)): phi of "
                             "each part's own targets would differ from part to part")

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        """SERA is a sum over rows, so each part's sum adds up to the whole (Dask evaluation), given the
        relevance (``check_parts``)."""
        self.check_parts()
        if np.size(y) == 0:
            return _Part(1)
        prepared = self.prepare(y, group, sample_weight, group_weight, n_classes)
        return _Part(1, lambda raw: [prepared.evaluate(raw)])

    def from_sums(self, sums):
        return float(sums[0])


class UtilityScore(_RelevanceMetric):
    """Utility-based precision, recall or F_beta (``score=``; see ``utility_precision``) as an engine
    metric; higher is better. Named ``utility_precision``, ``utility_recall`` or ``utility_f1``."""

    higher_is_better = True
    _SCORES = ("precision", "recall", "f1")

    def __init__(self, relevance=None, score="f1", threshold=0.5, p=0.5, beta=1.0, definition="ubl", link=None):
        super().__init__(relevance, link)
        self.score = check_choice(score, "score", self._SCORES)
        self.threshold, self.p, self.beta, self.definition = _check_scores(threshold, p, beta, definition)
        self.name = f"utility_{score}"

    def __repr__(self):
        return (f"UtilityScore(relevance={self.relevance!r}, score={self.score!r}, threshold={self.threshold!r}, "
                f"p={self.p!r}, beta={self.beta!r}, definition={self.definition!r}, link={self.link!r})")

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        if sample_weight is not None and np.size(sample_weight):
            raise ValueError("UtilityScore: utility-based precision and recall take no sample weights")
        index = self._SCORES.index(self.score)
        return self._prepared(y, group_weight, lambda y, phi, pred: _utility_scores(
            y, pred, phi, self.threshold, self.p, self.beta, self.definition)[index])

    def check_parts(self):
        raise ValueError("UtilityScore needs the whole evaluation set at once and is not evaluated on parts "
                         "of the data (Dask): use SERA there, or evaluate the model after training")

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        self.check_parts()


# ---------------------------------------------------------------- the relevance link and weights

#: the link's sensitivity stays within this share of |strength - 1| of 1 + (strength - 1) phi
_LINK_TOL = 0.02
#: most knots of a relevance link (each costs a step of the kernel's binary search only)
_LINK_MAX_KNOTS = 4096


def _max_abs_slope(phi, k):
    """max |phi'| on segment k: phi' = m_k + 2 c_k s + 3 d_k s^2 peaks at an end or at s = -c_k / (3 d_k)."""
    length = phi.x[k + 1] - phi.x[k]
    candidates = [0.0, length]
    if phi.d[k] != 0.0:
        vertex = -phi.c[k] / (3.0 * phi.d[k])
        if 0.0 < vertex < length:
            candidates.append(vertex)
    s = np.array(candidates)
    return float(np.max(np.abs(phi.m[k] + s * (2 * phi.c[k] + 3 * s * phi.d[k]))))


def relevance_link(relevance, strength, *, tol=_LINK_TOL) -> Link:
    """The link whose sensitivity follows a relevance function: h'(z) = 1 + (strength - 1) phi(z).

    h = z + (strength - 1) Phi, Phi an integral of phi, is piecewise quartic, which no link of the
    catalogue is; this returns the ``PiecewiseLinear`` link (so no new kernel) with knots splitting each
    control segment [x_k, x_{k+1}] into K_k = ceil(max|phi'| L_k / tol) equal pieces, and on each piece
    the slope 1 + (strength - 1) (Phi(b) - Phi(a)) / (b - a), the mean of the exact sensitivity there.
    Hence:

    - h equals z + (strength - 1) Phi(z) at every knot (up to a constant, which the loss ignores);
    - |h'(z) - (1 + (strength - 1) phi(z))| <= tol |strength - 1| everywhere (the mean of phi over a
      piece of length Delta is within max|phi'| Delta of every value on it);
    - beyond the end control points h' = 1 + (strength - 1) phi at the ends, exact when the end slopes
      are 0 (every automatic phi; a ValueError otherwise).

    Parameters
    ----------
    relevance : Relevance or array-like of shape (n, 2) or (n, 3)
        phi (``relevance(y_train)``) or its control points in the targets' units.
    strength : float
        > 0: how many times more an error at relevance 1 counts than one at relevance 0.
    tol : float
        The sensitivity's tolerance, as a share of |strength - 1| (0.02: about 75 knots per rising
        segment of the automatic phi).

    Returns
    -------
    PiecewiseLinear
        With the loss H(z) - H(y) - (z - y) h(y) ~ (1 + (strength - 1) phi(y)) (z - y)^2 / 2 near y.
    """
    phi = relevance if isinstance(relevance, Relevance) else Relevance(relevance)
    strength = _positive(strength, "strength", "relevance_link")
    tol = _positive(tol, "tol", "relevance_link")
    if phi.end_slopes != (0.0, 0.0):
        raise ValueError(f"relevance_link: needs slope 0 at the end control points (phi constant beyond "
                         f"them), got {phi.end_slopes}")
    knots, slopes = [float(phi.x[0])], [1.0 + (strength - 1.0) * float(phi.a[0])]
    for k in range(phi.x.size - 1):
        length = phi.x[k + 1] - phi.x[k]
        pieces = max(1, math.ceil(_max_abs_slope(phi, k) * length / tol))
        if len(knots) + pieces > _LINK_MAX_KNOTS:
            raise ValueError(f"relevance_link: tol={tol!r} needs more than {_LINK_MAX_KNOTS} knots: raise it")
        ends = phi.x[k] + length * np.arange(pieces + 1) / pieces
        ends[-1] = phi.x[k + 1]
        area = np.diff(phi.segment_integral(k, ends - phi.x[k]))
        slopes.extend((1.0 + (strength - 1.0) * area / np.diff(ends)).tolist())
        knots.extend(ends[1:].tolist())
    slopes.append(1.0 + (strength - 1.0) * float(phi.a[-1]))
    # a slope can only be <= 0 by rounding when strength is close to 0
    return PiecewiseLinear(knots=tuple(knots), slopes=tuple(max(s, 1e-300) for s in slopes))


def _quantile_points(control_points, y, sample_weight):
    from selboost.regions import weighted_quantile

    points = np.array(control_points, dtype=float)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError("relevance: control_points must be rows (x, phi) or (x, phi, slope)")
    if np.any((points[:, 0] < 0) | (points[:, 0] > 1)):
        raise ValueError(f"relevance: with quantiles=True, the control points' x are quantile levels in "
                         f"[0, 1], got {points[:, 0]}")
    if y is None:
        raise ValueError("relevance: quantiles=True needs the training targets to resolve the levels")
    yy = as_float_array(y, "y")
    weight = None if sample_weight is None else sample_weights(sample_weight, yy.size)
    points[:, 0] = [weighted_quantile(yy, level, None if weight is None or not weight.size else weight)
                    for level in points[:, 0]]
    return points


def _fit_relevance(y, sample_weight, control_points, quantiles, extr_type, coef, asym):
    if control_points is not None and quantiles:
        return Relevance(_quantile_points(control_points, y, sample_weight))
    if control_points is None and quantiles:
        raise ValueError("relevance: quantiles=True gives control points as quantile levels: give control_points")
    return relevance(y, control_points=control_points, extr_type=extr_type, coef=coef, asym=asym)


def relevance_weights(y, relevance=None, *, strength, quantiles=False, sample_weight=None, extr_type="both",
                      coef=1.5, asym=True):
    """Sample weights 1 + (strength - 1) phi(y): the up-weighting counterpart of ``relevance_link``.

    With square loss they minimise sum_i (1 + (s - 1) phi(y_i)) (pred_i - y_i)^2, the total squared
    error plus (s - 1) times SERA.

    Parameters
    ----------
    y : array-like
        The training targets (the rows weighted, and by default what phi is made from).
    relevance : Relevance, control points or None
        phi, or its control points (in the targets' units, or quantile levels of ``y`` with
        ``quantiles=True``); None: ``relevance(y, extr_type=..., coef=..., asym=...)``.
    strength : float
        > 0: the weight of a row at relevance 1 (rows at relevance 0 weigh 1).
    sample_weight : array-like, optional
        Only for resolving quantile levels (the returned weights do not include it).
    """
    strength = _positive(strength, "strength", "relevance_weights")
    yy = as_float_array(y, "y")
    if isinstance(relevance, Relevance):
        phi = relevance
    else:
        phi = _fit_relevance(yy, sample_weight, relevance, bool(quantiles), extr_type, coef, asym)
    return 1.0 + (strength - 1.0) * phi(yy)


class RelevanceLoss(SelectiveLoss):
    """``SelectiveLoss(relevance_link(phi, strength))``: h'(z) = 1 + (strength - 1) phi(z) (within
    ``tol``), so an error near a target of relevance r counts 1 + (strength - 1) r times square loss.

    loss(z, y) = H(z) - H(y) - (z - y) h(y), grad = h(z) - h(y), hess = max(h'(z), hess_min).

    phi is the training targets' own (``control_points=None``: ``relevance(y_train, extr_type, coef,
    asym)``), or given by control points in the targets' units, or, with ``quantiles=True``, control
    points whose x are quantile levels of the training targets. Unless phi is given in units, it is
    resolved on the targets the estimators fit (``resolve``); a loss used as ``obj=`` must be resolved
    first, ``RelevanceLoss(strength=10).resolve(y_train)``. Its parameters are grid-searchable
    (``loss__strength``).
    """

    def __init__(self, strength=10.0, control_points=None, *, quantiles=False, extr_type="both", coef=1.5,
                 asym=True, tol=_LINK_TOL, hess_min=1e-6):
        # stored as given, so that scikit-learn's clone sees the same objects
        self.strength, self.control_points, self.quantiles = strength, control_points, quantiles
        self.extr_type, self.coef, self.asym, self.tol = extr_type, coef, asym, tol
        _positive(strength, "strength", "RelevanceLoss")
        _positive(tol, "tol", "RelevanceLoss")
        check_choice(extr_type, "extr_type", EXTR_TYPES)
        if not isinstance(quantiles, (bool, np.bool_)):
            raise TypeError(f"RelevanceLoss: quantiles must be True or False, got {quantiles!r}")
        if quantiles and control_points is None:
            raise ValueError("RelevanceLoss: quantiles=True gives control points as quantile levels: give "
                             "control_points")
        self.relevance = None if self._needs_targets else Relevance(control_points)
        link = None if self.relevance is None else relevance_link(self.relevance, strength, tol=tol)
        super().__init__(PiecewiseLinear() if link is None else link, hess_min=hess_min)
        if link is None:
            self.link = None  # nothing to evaluate until phi is resolved

    @property
    def _needs_targets(self):
        return self.control_points is None or bool(self.quantiles)

    def __repr__(self):
        return (f"RelevanceLoss(strength={self.strength!r}, control_points={self.control_points!r}, "
                f"quantiles={self.quantiles!r}, extr_type={self.extr_type!r}, coef={self.coef!r}, "
                f"asym={self.asym!r}, tol={self.tol!r})")

    def resolve(self, y, sample_weight=None):
        """The loss with phi made from the training targets ``y`` (itself when phi is given in units):
        control points in units, so that evaluation data never move phi."""
        if not self._needs_targets:
            return self
        phi = _fit_relevance(y, sample_weight, self.control_points, bool(self.quantiles), self.extr_type,
                             self.coef, self.asym)
        return RelevanceLoss(self.strength, tuple(map(tuple, phi.control_points.tolist())), tol=self.tol,
                             hess_min=self.hess_min)

    def for_targets(self, y, sample_weight=None):
        return self.resolve(y, sample_weight)

    for_targets.__doc__ = resolve.__doc__

    def bind(self, y_true, sample_weight=None):
        if self.link is None:
            raise ValueError("RelevanceLoss: phi is made from the training targets: resolve it first, "
                             "loss.resolve(y_train) (the estimators do this at fit)")
        return super().bind(y_true, sample_weight)
