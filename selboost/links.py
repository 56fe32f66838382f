"""Increasing links h: the catalogue that defines every selective matching loss.

A link h defines the matching loss ``H(z) - H(y) - (z - y) h(y)`` (``H' = h``), with gradient
``h(z) - h(y)`` and hessian ``h'(z)``: the loss is sharp where h is steep and lenient where it is flat.

Conventions: a link has a ``center`` c and a ``scale`` s in score units, ``u = (z - c) / s``, and slope 1
at its centre, so a weight in a sum reads as "this many times the sensitivity of square loss there".
Links compose: ``Identity() + 9 * Sigmoid(center=2.0, scale=0.5)`` is square loss far from 2 and ten
times as sensitive at 2.

Every link offers vectorised NumPy ``h``, ``dh``, ``d2h``, ``H`` (a primitive, constants free) and
``inverse``; ``packed()`` gives the arrays the Numba kernels read (see ``selboost._elementwise``).
These NumPy methods are written independently of the kernels and serve as their reference.
"""

from __future__ import annotations

import math
import numbers
import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.special import expit, logit

from selboost._elementwise import (
    KIND_EXP,
    KIND_IDENTITY,
    KIND_PIECEWISE,
    KIND_SIGMOID,
    KIND_SINH,
    LINEAR_BEYOND,
)

__all__ = [
    "Link",
    "Identity",
    "Sigmoid",
    "Sinh",
    "Exp",
    "PiecewiseLinear",
    "WeightedSum",
    "LINKS",
    "LINEAR_BEYOND",
]


def _real(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return value


def _positive(value, name, owner):
    value = _real(value, name, owner)
    if value <= 0.0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")
    return value


def _as_float(z):
    return np.asarray(z, dtype=np.float64)


class Link:
    """Base class: an increasing function h with its derivatives, primitive and inverse."""

    # --- overridden by every link -----------------------------------------------------------
    def h(self, z):
        """The link h(z)."""
        raise NotImplementedError

    def dh(self, z):
        """The sensitivity h'(z) > 0: the loss's curvature at z."""
        raise NotImplementedError

    def d2h(self, z):
        """h''(z), used by exact listwise hessians."""
        raise NotImplementedError

    def H(self, z):  # noqa: N802 (the mathematical name)
        """A primitive H of h (H' = h); the constant is irrelevant to every loss."""
        raise NotImplementedError

    @property
    def range(self) -> tuple[float, float]:
        """The open interval (lo, hi) of values h takes."""
        raise NotImplementedError

    def _terms(self) -> tuple[tuple[float, "Link"], ...]:
        return ((1.0, self),)

    # --- shared ---------------------------------------------------------------------------
    def inverse(self, v):
        """h^{-1}(v) for v inside ``range``; a ValueError names values outside it."""
        v = _as_float(v)
        lo, hi = self.range
        bad = ~((v > lo) & (v < hi))
        if np.any(bad):
            raise ValueError(
                f"{self!r}.inverse: values must lie in the link's range ({lo}, {hi}), "
                f"got {v[bad].ravel()[:5]}"
            )
        return self._inverse(v)

    def _inverse(self, v):
        return _bisect_inverse(self, v)

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """(components, table): the float64 arrays the kernels evaluate (see ``_elementwise``)."""
        return _cached(self, "_pack")

    def _pack(self):
        rows = []
        table: list[float] = []
        for weight, term in self._terms():
            kind, center, scale = term._kind, term._center, term._scale
            offset = count = 0
            if kind == KIND_PIECEWISE:
                offset, count = len(table), len(term.knots)
                table.extend(term._table())
            rows.append([kind, weight, center, scale, offset, count])
        components = np.ascontiguousarray(rows, dtype=np.float64)
        table_array = np.asarray(table if table else [0.0], dtype=np.float64)
        components.setflags(write=False)
        table_array.setflags(write=False)
        return components, table_array

    # --- parameters (scikit-learn's get_params / set_params protocol) ---------------------------
    def get_params(self, deep=True):
        """The constructor's parameters; with ``deep``, the parameters of the parts as ``part__name``."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if deep:
            for name, part in self._parts().items():
                params[name] = part
                params.update({f"{name}__{key}": value for key, value in part.get_params().items()})
        return params

    def _parts(self):
        """Named sub-links reachable by ``get_params(deep=True)`` / ``replace`` (none by default)."""
        return {}

    def replace(self, **params):
        """A copy with some parameters changed (links are immutable): ``Sigmoid().replace(center=2)``;
        nested names reach the parts of a sum, ``link.replace(term_1__scale=0.5, weight_1=4)``."""
        own, nested = {}, {}
        for key, value in params.items():
            name, _, rest = key.partition("__")
            (nested.setdefault(name, {}).__setitem__(rest, value) if rest else own.__setitem__(name, value))
        return self._replaced(own, nested)

    def _replaced(self, own, nested):
        valid = self.get_params(deep=False)
        for name in [*own, *nested]:
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}: valid are {sorted(valid)}")
        return dataclasses.replace(self, **own)

    def set_params(self, **params):
        """Links are immutable: a TypeError that points to ``replace`` (which returns the changed copy)."""
        raise TypeError(f"{type(self).__name__} is immutable: use .replace(**params), which returns a new link")

    def __sklearn_clone__(self):
        return self  # immutable: a clone is the link itself

    @property
    def is_bounded(self) -> bool:
        """True when h is a sum of sigmoids: both ends of its range are finite and reachable as limits."""
        return all(isinstance(term, Sigmoid) for _, term in self._terms())

    def __add__(self, other):
        if not isinstance(other, Link):
            return NotImplemented
        return WeightedSum(self._terms() + other._terms())

    def __mul__(self, weight):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            return NotImplemented
        weight = _positive(weight, "weight", type(self).__name__)
        return WeightedSum(tuple((weight * w, term) for w, term in self._terms()))

    __rmul__ = __mul__


@dataclass(frozen=True)
class Identity(Link):
    """h(z) = z, h' = 1, H = z^2 / 2: square loss (z - y)^2 / 2, equally sensitive everywhere."""

    _kind = KIND_IDENTITY
    _center = 0.0
    _scale = 1.0

    def h(self, z):
        return _as_float(z).copy()

    def dh(self, z):
        return np.ones_like(_as_float(z))

    def d2h(self, z):
        return np.zeros_like(_as_float(z))

    def H(self, z):  # noqa: N802
        z = _as_float(z)
        return 0.5 * z * z

    @property
    def range(self):
        return (-math.inf, math.inf)

    def _inverse(self, v):
        return v.copy()


@dataclass(frozen=True)
class _CenteredLink(Link):
    """A link of u = (z - center) / scale; subclasses define the unit function."""

    center: float = 0.0
    scale: float = 1.0

    def __post_init__(self):
        name = type(self).__name__
        object.__setattr__(self, "center", _real(self.center, "center", name))
        object.__setattr__(self, "scale", self._checked_scale(_real(self.scale, "scale", name)))

    def _checked_scale(self, scale):
        if scale <= 0.0:
            raise ValueError(f"{type(self).__name__}: scale must be > 0, got {scale!r}")
        return scale

    @property
    def _center(self):
        return self.center

    @property
    def _scale(self):
        return self.scale

    def _u(self, z):
        return (_as_float(z) - self.center) / self.scale


@dataclass(frozen=True)
class Sigmoid(_CenteredLink):
    """h(z) = 4 s sigma(u), u = (z - c) / s; h' = 4 sigma (1 - sigma); H = 4 s^2 softplus(u).

    Sensitive near the centre c (slope 1 there), flat far from it; range (0, 4 s).
    ``0.25 * Sigmoid()`` with targets in {0, 1} given in the link's range is the logistic loss.
    """

    _kind = KIND_SIGMOID

    def h(self, z):
        return 4.0 * self.scale * expit(self._u(z))

    def dh(self, z):
        u = self._u(z)
        return 4.0 * expit(u) * expit(-u)  # not p (1 - p): 1 - p from p ~ 1 loses the far tail

    def d2h(self, z):
        u = self._u(z)
        p, p_bar = expit(u), expit(-u)
        return 4.0 * p * p_bar * (p_bar - p) / self.scale

    def H(self, z):  # noqa: N802
        return 4.0 * self.scale**2 * np.logaddexp(0.0, self._u(z))

    @property
    def range(self):
        return (0.0, 4.0 * self.scale)

    def _inverse(self, v):
        return self.center + self.scale * logit(v / (4.0 * self.scale))


@dataclass(frozen=True)
class Sinh(_CenteredLink):
    """h(z) = s sinh(u), u = (z - c) / s; h' = cosh(u); H = s^2 cosh(u).

    Sensitive far from c (slope 1 at c, growing like e^|u|). Beyond |u| = LINEAR_BEYOND (30) h
    continues linearly with slope cosh(30), so values stay finite for any finite score.
    """

    _kind = KIND_SINH

    def h(self, z):
        u = self._u(z)
        inner = np.clip(u, -LINEAR_BEYOND, LINEAR_BEYOND)
        return self.scale * (np.sinh(inner) + np.cosh(LINEAR_BEYOND) * (u - inner))

    def dh(self, z):
        return np.cosh(np.clip(self._u(z), -LINEAR_BEYOND, LINEAR_BEYOND))

    def d2h(self, z):
        u = self._u(z)
        inner = np.sinh(np.clip(u, -LINEAR_BEYOND, LINEAR_BEYOND)) / self.scale
        return np.where(np.abs(u) > LINEAR_BEYOND, 0.0, inner)

    def H(self, z):  # noqa: N802
        u = self._u(z)
        outside = np.maximum(np.abs(u) - LINEAR_BEYOND, 0.0)
        inner = np.clip(u, -LINEAR_BEYOND, LINEAR_BEYOND)
        value = np.cosh(inner) + np.sinh(LINEAR_BEYOND) * outside + 0.5 * np.cosh(LINEAR_BEYOND) * outside**2
        return self.scale**2 * value

    @property
    def range(self):
        return (-math.inf, math.inf)

    def _inverse(self, v):
        w = v / self.scale
        edge = math.sinh(LINEAR_BEYOND)
        inside = np.arcsinh(np.clip(w, -edge, edge))
        beyond = np.sign(w) * (LINEAR_BEYOND + (np.abs(w) - edge) / math.cosh(LINEAR_BEYOND))
        return self.center + self.scale * np.where(np.abs(w) > edge, beyond, inside)


@dataclass(frozen=True)
class Exp(_CenteredLink):
    """h(z) = s (e^u - 1), u = (z - c) / s; h' = e^u; H = s^2 e^u - s z.

    s > 0: sensitive to high scores, lenient below c; s < 0: the mirror image (u grows as z falls).
    Beyond u = LINEAR_BEYOND (30) h continues linearly with slope e^30. Range (-s, inf) for s > 0,
    (-inf, -s) for s < 0.
    """

    _kind = KIND_EXP

    def _checked_scale(self, scale):
        if scale == 0.0:
            raise ValueError(f"Exp: scale must be non-zero, got {scale!r}")
        return scale

    def h(self, z):
        u = self._u(z)
        inner = np.minimum(u, LINEAR_BEYOND)
        return self.scale * (np.expm1(inner) + np.exp(inner) * (u - inner))

    def dh(self, z):
        return np.exp(np.minimum(self._u(z), LINEAR_BEYOND))

    def d2h(self, z):
        u = self._u(z)
        return np.where(u > LINEAR_BEYOND, 0.0, np.exp(np.minimum(u, LINEAR_BEYOND)) / self.scale)

    def H(self, z):  # noqa: N802
        z = _as_float(z)
        u = self._u(z)
        inner = np.minimum(u, LINEAR_BEYOND)
        d = u - inner
        return self.scale**2 * np.exp(inner) * (1.0 + d + 0.5 * d * d) - self.scale * z

    @property
    def range(self):
        s = self.scale
        return (-s, math.inf) if s > 0 else (-math.inf, -s)

    def _inverse(self, v):
        w = v / self.scale + 1.0  # = e^u inside the exponential part
        edge = math.exp(LINEAR_BEYOND)
        inside = np.log(np.minimum(w, edge))
        beyond = LINEAR_BEYOND + (w - edge) / edge
        return self.center + self.scale * np.where(w > edge, beyond, inside)


@dataclass(frozen=True)
class PiecewiseLinear(Link):
    """Continuous piecewise-linear h with h(0) = 0 and slope ``slopes[j]`` on region j.

    Regions: (-inf, knots[0]), [knots[0], knots[1]), ..., [knots[-1], inf); ``len(slopes) ==
    len(knots) + 1``, knots strictly increasing, slopes > 0. H is piecewise quadratic. Sensitive
    where the slope is large.
    """

    knots: tuple = field(default=(0.0,))
    slopes: tuple = field(default=(1.0, 1.0))
    _kind = KIND_PIECEWISE
    _center = 0.0
    _scale = 1.0

    def __post_init__(self):
        knots = tuple(_real(k, "knots", "PiecewiseLinear") for k in np.ravel(self.knots).tolist())
        slopes = tuple(_positive(m, "slopes", "PiecewiseLinear") for m in np.ravel(self.slopes).tolist())
        if len(knots) < 1:
            raise ValueError(f"PiecewiseLinear: needs at least one knot, got knots={knots!r}")
        if any(b <= a for a, b in zip(knots, knots[1:])):
            raise ValueError(f"PiecewiseLinear: knots must be strictly increasing, got {knots!r}")
        if len(slopes) != len(knots) + 1:
            raise ValueError(
                f"PiecewiseLinear: needs len(slopes) == len(knots) + 1, got {len(slopes)} slopes "
                f"for {len(knots)} knots"
            )
        object.__setattr__(self, "knots", knots)
        object.__setattr__(self, "slopes", slopes)

    @property
    def _anchors(self):
        return _cached(self, "_compute_anchors")

    def _compute_anchors(self):
        """(x, h, H) at each segment's point nearest 0 (0 itself in the segment that holds it): there
        h(z) = h(x) + m (z - x) adds two terms of one sign, which cannot cancel near h's zero."""
        knots = np.asarray(self.knots)
        left = np.concatenate([[-np.inf], knots])
        right = np.concatenate([knots, [np.inf]])
        anchor_x = np.clip(0.0, left, right)
        h_at = np.empty_like(anchor_x)
        big_h_at = np.empty_like(anchor_x)
        for j, x in enumerate(anchor_x):
            h_at[j], big_h_at[j] = self._integrate_from_zero(x)
        return anchor_x, h_at, big_h_at

    def _integrate_from_zero(self, x):
        """(h(x), H(x)) with h(0) = H(0) = 0, walking the regions between 0 and x."""
        points = sorted({0.0, x, *[k for k in self.knots if min(0.0, x) < k < max(0.0, x)]})
        if x < 0.0:
            points = points[::-1]
        h = big_h = 0.0
        for a, b in zip(points, points[1:]):
            slope = self.slopes[int(np.searchsorted(self.knots, 0.5 * (a + b), side="right"))]
            d = b - a
            big_h += h * d + 0.5 * slope * d * d
            h += slope * d
        return h, big_h

    def _table(self):
        anchor_x, h_at, big_h_at = self._anchors
        return [*self.knots, *self.slopes, *h_at.tolist(), *big_h_at.tolist(), *anchor_x.tolist()]

    def _region(self, z):
        return np.searchsorted(np.asarray(self.knots), z, side="right")

    def h(self, z):
        z = _as_float(z)
        anchor_x, h_at, _ = self._anchors
        j = self._region(z)
        return h_at[j] + np.asarray(self.slopes)[j] * (z - anchor_x[j])

    def dh(self, z):
        return np.asarray(self.slopes)[self._region(_as_float(z))]

    def d2h(self, z):
        return np.zeros_like(_as_float(z))

    def H(self, z):  # noqa: N802
        z = _as_float(z)
        anchor_x, h_at, big_h_at = self._anchors
        j = self._region(z)
        d = z - anchor_x[j]
        return big_h_at[j] + h_at[j] * d + 0.5 * np.asarray(self.slopes)[j] * d * d

    @property
    def range(self):
        return (-math.inf, math.inf)

    def _inverse(self, v):
        anchor_x, h_at, _ = self._anchors
        # h at the knots is increasing: find the region by value
        at_knots = np.array([self._integrate_from_zero(k)[0] for k in self.knots])
        j = np.searchsorted(at_knots, v, side="right")
        return anchor_x[j] + (v - h_at[j]) / np.asarray(self.slopes)[j]


@dataclass(frozen=True)
class WeightedSum(Link):
    """h = sum_k w_k h_k with w_k > 0; h' = sum_k w_k h_k'; H = sum_k w_k H_k.

    Built with ``+`` and scalar ``*``. Sensitive wherever one of its parts is.
    """

    terms: tuple

    def __post_init__(self):
        if not self.terms:
            raise ValueError("WeightedSum: needs at least one term")
        checked = []
        for item in self.terms:
            weight, term = item
            weight = _positive(weight, "weight", "WeightedSum")
            if not isinstance(term, Link) or isinstance(term, WeightedSum):
                raise TypeError(f"WeightedSum: terms must be (weight, basic link) pairs, got {item!r}")
            checked.append((weight, term))
        object.__setattr__(self, "terms", tuple(checked))

    def _terms(self):
        return self.terms

    def get_params(self, deep=True):
        params = super().get_params(deep)
        if deep:
            params.update({f"weight_{i}": weight for i, (weight, _) in enumerate(self.terms)})
        return params

    def _parts(self):
        return {f"term_{i}": term for i, (_, term) in enumerate(self.terms)}

    def _replaced(self, own, nested):
        terms = [list(item) for item in own.pop("terms", self.terms)]

        def index(key, kind):
            prefix, _, i = key.rpartition("_")
            if prefix != kind or not i.isdigit() or int(i) >= len(terms):
                raise ValueError(f"invalid parameter {key!r} for WeightedSum: valid are terms, weight_i and "
                                 f"term_i (i < {len(terms)}), with term_i__<name> for a part's parameters")
            return int(i)

        for key, value in own.items():
            slot = 0 if key.startswith("weight_") else 1
            terms[index(key, ("weight", "term")[slot])][slot] = value
        for key, params in nested.items():
            i = index(key, "term")
            terms[i][1] = terms[i][1].replace(**params)
        return WeightedSum(tuple(tuple(item) for item in terms))

    def _combine(self, method, z):
        z = _as_float(z)
        return sum(w * getattr(term, method)(z) for w, term in self.terms)

    def h(self, z):
        return self._combine("h", z)

    def dh(self, z):
        return self._combine("dh", z)

    def d2h(self, z):
        return self._combine("d2h", z)

    def H(self, z):  # noqa: N802
        return self._combine("H", z)

    @property
    def range(self):
        lo = sum(w * term.range[0] for w, term in self.terms)
        hi = sum(w * term.range[1] for w, term in self.terms)
        return (lo, hi)

    def _inverse(self, v):
        if len(self.terms) == 1:
            weight, term = self.terms[0]
            return term._inverse(v / weight)
        return _bisect_inverse(self, v)


def _bisect_inverse(link, v):
    """Monotone bisection for h(z) = v, to the last representable digit."""
    v = np.asarray(v, dtype=np.float64)
    lo = np.full(v.shape, -1.0)
    hi = np.full(v.shape, 1.0)
    for _ in range(2100):
        low_bad = link.h(lo) > v
        high_bad = link.h(hi) < v
        if not (low_bad.any() or high_bad.any()):
            break
        lo = np.where(low_bad, 2.0 * lo, lo)
        hi = np.where(high_bad, 2.0 * hi, hi)
    for _ in range(2200):
        mid = 0.5 * (lo + hi)
        done = (mid == lo) | (mid == hi)
        if done.all():
            break
        above = link.h(mid) >= v
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    below = np.abs(link.h(lo) - v) <= np.abs(link.h(hi) - v)
    return np.where(below, lo, hi)


#: Every basic link by name, with a factory for a typical non-default instance (tests walk this).
LINKS = {
    "identity": Identity,
    "sigmoid": Sigmoid,
    "sinh": Sinh,
    "exp": Exp,
    "piecewise": PiecewiseLinear,
}


@lru_cache(maxsize=512)
def _cached(link, method):
    """``link.<method>()`` computed once per distinct link. Links are frozen dataclasses (hashable, equal
    when their parameters are), so the cache lives here and never writes into the user's object."""
    return getattr(link, method)()
