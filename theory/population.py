"""Exact population quantities of the one-neuron theorem: expected θ₁-gradients, robust risk, one GD step.

Data (PAPER.md §2): y = ±1 with probability ½, x₁ = γy, Z = θ_{2:d}ᵀx_{2:d} ~ N(0, s²) with
s = σ‖θ_{2:d}‖. For each label the per-sample gradient is a smooth function of Z inside each cell
(dead / active / unstable, `theory.derivation`), so each expectation is a sum of 1-D integrals whose
limits are the cell boundaries; scipy's adaptive quadrature then reaches better than 1e-12 relative accuracy
(tested against 30-digit mpmath; the issue asks for 1e-9). The integrands are the lambdified sympy derivation, not retyped.

θ_{2:d} is frozen, so s stays fixed through the step; only θ₁ moves.
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import integrate
from scipy.special import expit, ndtr

from theory import derivation
from theory.lemma import in_theorem_region, log_root, threshold_ratio

__all__ = [
    "QUAD_EPSREL", "Gradients", "OneStep", "RiskGapGrid", "expected_gradients", "robust_risk",
    "risk_increment", "risk_difference", "one_step", "risk_gap_grid", "critical_ratio", "threshold_ratio",
    "in_theorem_region",
]

#: Relative tolerance asked of each quadrature piece (the issue asks for ≤ 1e-9 overall).
QUAD_EPSREL = 1e-11
_SQRT_2PI = math.sqrt(2 * math.pi)
_T_MAX = 40.0
# |∂L/∂θ₁| ≤ a(γ + ε) per sample, so this absolute floor is 1e-15 of the largest possible gradient:
# it only matters for pieces that are themselves negligible.
_EPSABS = 1e-15


@functools.lru_cache(maxsize=1)
def _pieces():
    """Per (y, cell): which objectives' integrals are needed, and whether AT and COAP coincide.

    Read off the derivation: a cell whose ∂J/∂θ₁ is identically 0 contributes nothing; a cell where the
    two objectives' margins agree symbolically is integrated once and shared.
    """
    d = derivation.derive()
    plan = {}
    for y in derivation.LABELS:
        for cell in derivation.CELLS:
            zero = {obj: d.margin_grads[(obj, y, cell)] == 0 for obj in derivation.OBJECTIVES}
            same = sp.simplify(d.margins[("at", y, cell)] - d.margins[("coap", y, cell)]) == 0
            plan[(y, cell)] = (zero, same)
    return plan


def _piece_integral(objective, y, cell, theta1, s, eps, gamma, a, b):
    """½·E[g·1{label y, cell}] as an integral over the standardised t = Z/s."""
    margin, slope = derivation.scalar_pieces()[(objective, y, cell)]
    x1 = gamma * y
    rad = eps * abs(theta1)
    lo_z, hi_z = {"dead": (-math.inf, -rad - theta1 * x1),
                  "unstable": (-rad - theta1 * x1, rad - theta1 * x1),
                  "active": (rad - theta1 * x1, math.inf)}[cell]

    def integrand(t):
        z = s * t
        # Stable logistic: σ(−J) through expit avoids overflow of e^{−J} in the far tails.
        return -expit(-margin(x1, z, theta1, eps, a, b)) * slope(x1, z, theta1, eps, a, b) \
            * math.exp(-0.5 * t * t) / _SQRT_2PI

    # φ(t) underflows to exactly 0 in double precision beyond |t| ≈ 38.6, so cutting the infinite cells
    # at ±T_MAX changes nothing, and finite limits let quad take breakpoints where the mass sits.
    lo, hi = max(lo_z / s, -_T_MAX), min(hi_z / s, _T_MAX)
    if lo >= hi:
        return 0.0
    points = [p for p in (-8.0, 0.0, 8.0) if lo < p < hi]
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        value, _ = integrate.quad(integrand, lo, hi, points=points or None, epsabs=_EPSABS * abs(a) * (gamma + eps),
                                  epsrel=QUAD_EPSREL, limit=200)
    return 0.5 * value


@dataclass(frozen=True)
class Gradients:
    """Expected θ₁-gradients of the population losses; `gap` = coap − at, integrated directly."""

    at: np.ndarray | float
    coap: np.ndarray | float
    gap: np.ndarray | float


def _expected_scalar(theta1, s, eps, gamma, a, b):
    total = {"at": 0.0, "coap": 0.0}
    gap = 0.0
    for (y, cell), (zero, same) in _pieces().items():
        values = {}
        for obj in derivation.OBJECTIVES:
            if zero[obj]:
                values[obj] = 0.0
            elif same and obj == "coap":
                values[obj] = values["at"]
            else:
                values[obj] = _piece_integral(obj, y, cell, theta1, s, eps, gamma, a, b)
            total[obj] += values[obj]
        if not same:
            gap += values["coap"] - values["at"]
    return total["at"], total["coap"], gap


def _require_setting(**values):
    """Reject arguments outside the setting the derivation assumed (its sign assumptions on a, b, ...)."""
    rules = {"theta1": (lambda v: v != 0, "non-zero"), "s": (lambda v: v > 0, "positive"),
             "eps": (lambda v: v >= 0, "non-negative"), "gamma": (lambda v: v > 0, "positive"),
             "a": (lambda v: v > 0, "positive"), "b": (lambda v: v < 0, "negative")}
    for name, value in values.items():
        ok, word = rules[name]
        value = np.asarray(value, dtype=float)
        if not (np.all(np.isfinite(value)) and np.all(ok(value))):
            raise ValueError(f"{name} must be finite and {word} in the one-neuron setting, got {value}.")


def _vectorised(func, n_out, *args):
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in args))
    out = [np.empty(arrays[0].shape) for _ in range(n_out)]
    for index in np.ndindex(arrays[0].shape):
        for k, value in enumerate(func(*(float(arr[index]) for arr in arrays))):
            out[k][index] = value
    return [o[()] for o in out]


def expected_gradients(theta1, s, eps, gamma=1.0, a=1.0, b=-0.5):
    """E[∂L/∂θ₁] for AT and COAP over the population, numpy-broadcast over all arguments.

    theta1 ≠ 0; s = σ‖θ_{2:d}‖ > 0; eps ≥ 0; gamma > 0; a > 0; b < 0 (the derivation's assumptions).
    """
    _require_setting(theta1=theta1, s=s, eps=eps, gamma=gamma, a=a, b=b)
    return Gradients(*_vectorised(_expected_scalar, 3, theta1, s, eps, gamma, a, b))


def _margin_offset(theta1, eps, gamma):
    # The worst case moves the signal term γθ₁ toward the boundary by ε|θ₁| (any sign of θ₁).
    return gamma * theta1 - eps * np.abs(theta1)


def robust_risk(theta1, s, eps, gamma=1.0, a=1.0, b=-0.5):
    """R_ε(θ) = P(some x' ∈ B_ε(x) is misclassified), numpy-broadcast.

    ½[Φ((−b/a − m)/s) + Φ((b/a − m)/s)] with m = γθ₁ − ε|θ₁|; for θ₁ > 0 this is the paper's
    ½[Φ(−(γ−ε)θ₁/s − b/(as)) + Φ(−(γ−ε)θ₁/s + b/(as))] (checked symbolically in `theory.checks`).
    """
    _require_setting(s=s, eps=eps, gamma=gamma, a=a, b=b)
    theta1, s, eps, gamma, a, b = (np.asarray(v, dtype=float) for v in (theta1, s, eps, gamma, a, b))
    m = _margin_offset(theta1, eps, gamma)
    return (0.5 * (ndtr((-b / a - m) / s) + ndtr((b / a - m) / s)))[()]


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


def _ndtr_increment(x, dx):
    """Φ(x + dx) − Φ(x) to full relative precision even when dx is 1e-20 of x (Gauss–Legendre on φ)."""
    x, dx = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(dx, dtype=float))
    half = dx / 2
    nodes = (x + half)[..., None] + half[..., None] * _GL_NODES
    close = half * np.sum(_GL_WEIGHTS * np.exp(-0.5 * nodes ** 2), axis=-1) / _SQRT_2PI
    return np.where(np.abs(dx) < 1.0, close, ndtr(x + dx) - ndtr(x))


def risk_increment(theta1, delta, s, eps, gamma=1.0, a=1.0, b=-0.5):
    """R_ε(θ₁ + δ) − R_ε(θ₁) at the same s, accurate however small δ is (no θ₁ + δ rounding)."""
    theta1, delta, s, eps, gamma, a, b = (np.asarray(v, dtype=float) for v in (theta1, delta, s, eps, gamma, a, b))
    m_ref = _margin_offset(theta1, eps, gamma)
    # While θ₁ keeps its sign, m = (γ − ε·sgn θ₁)·θ₁ is linear, so its change is exact without forming θ₁ + δ.
    same_sign = np.sign(theta1 + delta) == np.sign(theta1)
    dm = np.where(same_sign, (gamma - eps * np.sign(theta1)) * delta,
                  _margin_offset(theta1 + delta, eps, gamma) - m_ref)
    diff = 0.0
    for c in (-b / a, b / a):
        diff = diff + _ndtr_increment((c - m_ref) / s, -dm / s)
    return (0.5 * diff)[()]


def risk_difference(theta1_new, theta1_ref, s, eps, gamma=1.0, a=1.0, b=-0.5):
    """R_ε(θ₁_new) − R_ε(θ₁_ref) at the same s, without the cancellation of subtracting two risks."""
    theta1_ref = np.asarray(theta1_ref, dtype=float)
    return risk_increment(theta1_ref, np.asarray(theta1_new, dtype=float) - theta1_ref, s, eps, gamma, a, b)


@dataclass(frozen=True)
class OneStep:
    """One full-population GD step from the same θ₁ for each objective (PAPER.md §2)."""

    grad_at: np.ndarray | float
    grad_coap: np.ndarray | float
    theta1_at: np.ndarray | float
    theta1_coap: np.ndarray | float
    risk_init: np.ndarray | float
    risk_at: np.ndarray | float
    risk_coap: np.ndarray | float
    risk_gap: np.ndarray | float          # R_COAP − R_AT after the step, computed without cancellation
    in_theorem_region: np.ndarray | bool
    threshold_ratio: np.ndarray | float

    def as_dict(self):
        """Plain-Python values (floats, bools, nested lists) for JSON; NaN (no threshold) becomes None."""
        def plain(value):
            if isinstance(value, list):
                return [plain(v) for v in value]
            return None if isinstance(value, float) and math.isnan(value) else value
        return {k: plain(np.asarray(v).tolist()) for k, v in self.__dict__.items()}


def one_step(eps, ratio, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0, eta=1.0):
    """θ₁' = θ₁ − η·E[g] for AT and COAP and the robust risks before and after, numpy-broadcast.

    ratio = r = ‖θ_{2:d}‖/|θ₁| at initialisation, so s = σ·r·|θ₁|.
    """
    eps, ratio, gamma, sigma, a, b, theta1, eta = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (eps, ratio, gamma, sigma, a, b, theta1, eta)))
    s = sigma * ratio * np.abs(theta1)
    grads = expected_gradients(theta1, s, eps, gamma, a, b)
    theta1_at = theta1 - eta * grads.at
    theta1_coap = theta1 - eta * grads.coap
    # θ₁^COAP − θ₁^AT = −η·gap exactly; using it keeps the tiny risk gap free of cancellation.
    return OneStep(
        grad_at=grads.at, grad_coap=grads.coap,
        theta1_at=theta1_at[()], theta1_coap=theta1_coap[()],
        risk_init=robust_risk(theta1, s, eps, gamma, a, b),
        risk_at=robust_risk(theta1_at, s, eps, gamma, a, b),
        risk_coap=robust_risk(theta1_coap, s, eps, gamma, a, b),
        risk_gap=risk_increment(theta1_at, -eta * np.asarray(grads.gap), s, eps, gamma, a, b),
        in_theorem_region=in_theorem_region(eps, ratio, gamma, sigma),
        threshold_ratio=threshold_ratio(eps, gamma, sigma),
    )


@dataclass(frozen=True)
class RiskGapGrid:
    """R_COAP − R_AT after one step on a grid (rows: ε/γ, columns: r), with the theorem's region."""

    eps_ratio: np.ndarray          # ε/γ, shape (n_eps,)
    ratio: np.ndarray              # r, shape (n_r,)
    gap: np.ndarray                # shape (n_eps, n_r)
    in_region: np.ndarray          # bool, shape (n_eps, n_r)
    threshold: np.ndarray          # sufficient r per ε (exponent 3; NaN where the lemma gives none)
    threshold_printed: np.ndarray  # the same with the printed exponent 4
    params: dict

    def counts(self):
        """Cases, cases in the region, violations in it (gap ≤ 0), COAP still worse outside it."""
        worse = self.gap > 0
        return {"cases": int(self.gap.size), "in_region": int(self.in_region.sum()),
                "violations_in_region": int((self.in_region & ~worse).sum()),
                "coap_worse_outside_region": int((~self.in_region & worse).sum())}


def risk_gap_grid(eps_ratios, ratios, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0, eta=1.0):
    """One step at every (ε/γ, r) of the grid; see `RiskGapGrid`."""
    eps_ratios, ratios = np.asarray(eps_ratios, dtype=float), np.asarray(ratios, dtype=float)
    eps = gamma * eps_ratios[:, None]
    step = one_step(eps, ratios[None, :], gamma, sigma, a, b, theta1, eta)
    return RiskGapGrid(
        eps_ratio=eps_ratios, ratio=ratios, gap=np.asarray(step.risk_gap),
        in_region=np.asarray(step.in_theorem_region),
        threshold=np.asarray(threshold_ratio(gamma * eps_ratios, gamma, sigma)),
        threshold_printed=np.asarray(threshold_ratio(gamma * eps_ratios, gamma, sigma, exponent=4)),
        params={"gamma": gamma, "sigma": sigma, "a": a, "b": b, "theta1": theta1, "eta": eta},
    )


def critical_ratio(eps, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0):
    """The exact r* where E[g_COAP] − E[g_AT] changes sign, numpy-broadcast over all arguments.

    For ε < γ the robust risk falls as θ₁ grows, so after one step of any η > 0 COAP's risk is the higher
    one exactly when r > r*. Searched over r ∈ [0.05, 20]·γ/σ; NaN where the gap keeps one sign there.
    """
    _require_setting(theta1=theta1, eps=eps, gamma=gamma, a=a, b=b)

    def scalar(eps, gamma, sigma, a, b, theta1):
        def gap(r):
            return _expected_scalar(theta1, sigma * r * abs(theta1), eps, gamma, a, b)[2]
        return (log_root(gap, 0.05 * gamma / sigma, 20.0 * gamma / sigma),)
    return _vectorised(scalar, 1, eps, gamma, sigma, a, b, theta1)[0]
