"""The proof's lemma on the mismatch set I* = {y = +1, ℓ < 0 < u}, symbolically and numerically.

With θ₁ > 0, x₁ = γ and W = Z/θ₁ ~ N(0, (σr)²), I* is W ∈ (−(γ+ε), −(γ−ε)). The proof reduces the sign
of COAP's expected extra gradient there to −f(r), with f written through truncated-normal moments of W,
bounds f by u(r), and reads off a sufficient condition on r. This module holds

* the truncated-normal moments of W, integrated by sympy (not quoted);
* `derived_f` — the reduction obtained here from the derived COAP gradient;
* the paper's printed f(r) and u(r) (transcriptions, to be *checked*, in `PRINTED_F`, `PRINTED_U`);
* `threshold_ratio` — the sufficient condition on r = ‖θ_{2:d}‖/θ₁, with the exponent the proof supports.

Both f and u depend on σ and r only through v = σr, and are homogeneous of degree 2 in (γ, ε, σ).
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from scipy import integrate
from scipy.optimize import brentq

from theory import derivation as dv
from theory.derivation import EPS

__all__ = [
    "GAMMA", "SIGMA", "R", "W", "V", "PRINTED_F", "PRINTED_U", "REDUCED_F", "std_pdf", "std_cdf", "truncation",
    "normal_antiderivative", "truncated_moment", "mismatch_bracket", "derived_f", "reduction_value",
    "reduction_ratio", "log_root", "printed_threshold_sq", "threshold_ratio", "in_theorem_region", "numeric_f",
]

GAMMA, SIGMA, R = sp.symbols("gamma sigma r", positive=True)
W = sp.Symbol("w", real=True)
V = SIGMA * R                                       # standard deviation of W



def std_pdf(t):
    """Standard normal density φ, symbolic."""
    return sp.exp(-t ** 2 / 2) / sp.sqrt(2 * sp.pi)


def std_cdf(t):
    """Standard normal cdf Φ, symbolic."""
    return (1 + sp.erf(t / sp.sqrt(2))) / 2


#: α and β of the paper: the standardised truncation limits of W.
ALPHA_T = -(GAMMA + EPS) / (R * SIGMA)
BETA_T = -(GAMMA - EPS) / (R * SIGMA)

#: The paper's printed reduction (docs/PAPER.md §2), transcribed for comparison only.
PRINTED_F = (GAMMA ** 2 - EPS ** 2 - 2 * SIGMA ** 2 * R ** 2
             - SIGMA * R * ((GAMMA - 3 * EPS) * std_pdf(BETA_T) - (GAMMA + EPS) * std_pdf(ALPHA_T))
             / (std_cdf(BETA_T) - std_cdf(ALPHA_T)))

#: E[γ² − ε² − W² | I*] — the unweighted reduction of the derived gradient (σ(−J̃) dropped; `theory.checks.f_reduction`).
#: The printed f is not this but step 4's valid lower bound (`theory.checks.printed_f_is_step4_bound`).
REDUCED_F = (GAMMA ** 2 - EPS ** 2 - V ** 2
             - V * ((GAMMA - EPS) * std_pdf(BETA_T) - (GAMMA + EPS) * std_pdf(ALPHA_T))
             / (std_cdf(BETA_T) - std_cdf(ALPHA_T)))

_QUAD = GAMMA ** 2 - 10 * GAMMA * EPS + 13 * EPS ** 2
#: The paper's printed upper bound u(r) on f(r), transcribed for comparison only.
PRINTED_U = (((GAMMA - 7 * EPS) * (GAMMA + EPS) ** 4 + 4 * R ** 2 * SIGMA ** 2 * (GAMMA + EPS) * _QUAD)
             / (4 * (GAMMA + EPS) ** 3 - 48 * R ** 2 * SIGMA ** 2 * EPS))


_T = sp.Symbol("t", real=True)


def truncation():
    """(lower, upper) limits of W on I* for θ₁ > 0."""
    return -(GAMMA + EPS), -(GAMMA - EPS)


_T = sp.Symbol("t", real=True)


@functools.lru_cache(maxsize=None)
def normal_antiderivative(k: int):
    """An antiderivative of t^k·φ(t): Φ for k = 0, t^0·(−φ) for k = 1, else integration by parts,
    ∫t^k φ = −t^{k−1}φ + (k−1)∫t^{k−2}φ. (sympy's own integrator takes seconds here; `theory.checks`
    verifies d/dt of the result is t^k·φ.)"""
    if k == 0:
        return std_cdf(_T)
    if k == 1:
        return -std_pdf(_T)
    return -_T ** (k - 1) * std_pdf(_T) + (k - 1) * normal_antiderivative(k - 2)


@functools.lru_cache(maxsize=None)
def truncated_moment(k: int):
    """E[W^k | W ∈ I*] for W ~ N(0, v²) truncated to I* (k = 0 gives 1), in the standardised
    variable t = W/v between the paper's limits α and β."""
    def mass(power):
        antiderivative = normal_antiderivative(power)
        return antiderivative.subs(_T, BETA_T) - antiderivative.subs(_T, ALPHA_T)
    return V ** k * mass(k) / mass(0)


@functools.lru_cache(maxsize=1)
def mismatch_bracket():
    """(2ε/a)·∂J̃/∂θ₁ on I* with x₁ = γ, θ₁ > 0, z = θ₁·W: a polynomial in W, from the derivation.

    COAP's loss gradient there is −a·σ(−J̃)/(2ε)·bracket, so E[bracket | I*] < 0 makes its expected extra
    gradient positive — up to the weight σ(−J̃), which the proof's reduction drops.
    """
    theta = sp.Symbol("theta", positive=True)
    grad = dv.derive().margin_grads[("coap", 1, "unstable")]
    grad = grad.subs({dv.X1: GAMMA, dv.Z: dv.THETA1 * W}).subs(dv.THETA1, theta)
    return sp.expand(sp.simplify(grad * 2 * EPS / dv.A))


def derived_f(bracket):
    """E[bracket(W) | I*] for a polynomial bracket in W, through the sympy moments."""
    poly = sp.Poly(sp.expand(bracket), W)
    return sum(coeff * truncated_moment(power) for (power,), coeff in poly.terms())


def printed_threshold_sq(exponent=3):
    """The printed sufficient condition's two terms for r², with the exponent of (γ+ε) in the first."""
    return ((7 * EPS - GAMMA) * (GAMMA + EPS) ** exponent / (4 * SIGMA ** 2 * _QUAD),
            (GAMMA + EPS) ** 3 / (12 * SIGMA ** 2 * EPS))


@functools.lru_cache(maxsize=4)
def _threshold_funcs(exponent):
    first, second = printed_threshold_sq(exponent)
    args = (EPS, GAMMA, SIGMA)
    return sp.lambdify(args, first, "numpy"), sp.lambdify(args, second, "numpy"), sp.lambdify(args, _QUAD, "numpy")


def threshold_ratio(eps, gamma=1.0, sigma=1.0, exponent=3):
    """Sufficient r for the lemma: √max{(7ε−γ)(γ+ε)^k / (4σ²(γ²−10γε+13ε²)), (γ+ε)³/(12σ²ε)}.

    `exponent` k = 3 is what the proof's bound u(r) supports (checked in `theory.checks`); the Dec-2022
    print has k = 4. NaN for ε ≤ (5+2√3)γ/13: there u(r) → −(γ+ε)(γ²−10γε+13ε²)/(12ε) is not negative, or
    (below γ/7) u no longer bounds f, so the lemma gives no r.
    """
    first, second, quad = _threshold_funcs(exponent)
    eps, gamma, sigma = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (eps, gamma, sigma)))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.sqrt(np.maximum(first(eps, gamma, sigma), second(eps, gamma, sigma)))
        return np.where((quad(eps, gamma, sigma) > 0) & (7 * eps > gamma), value, np.nan)[()]


def in_theorem_region(eps, ratio, gamma=1.0, sigma=1.0, exponent=3):
    """2γ/3 < ε < γ and r above the sufficient threshold — where the theorem claims COAP is worse."""
    eps, ratio, gamma, sigma = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (eps, ratio, gamma, sigma)))
    threshold = threshold_ratio(eps, gamma, sigma, exponent)
    with np.errstate(invalid="ignore"):
        return ((3 * eps > 2 * gamma) & (eps < gamma) & (ratio > threshold))[()]


@functools.lru_cache(maxsize=4)
def _f_func(which):
    expr = {"printed_f": PRINTED_F, "printed_u": PRINTED_U}[which]
    return sp.lambdify((EPS, GAMMA, SIGMA, R), expr, "scipy")


def numeric_f(which, eps, ratio, gamma=1.0, sigma=1.0):
    """Evaluate "printed_f" or "printed_u" numerically (numpy-broadcast)."""
    return _f_func(which)(eps, gamma, sigma, ratio)


@functools.lru_cache(maxsize=1)
def _bracket_func():
    return sp.lambdify((W, EPS, GAMMA), mismatch_bracket(), "math")


def _reduction_scalar(eps, ratio, gamma, sigma):
    v = sigma * ratio
    lo, hi = -(gamma + eps), -(gamma - eps)
    bracket = _bracket_func()
    # The density is renormalised inside the integral so far-tail truncations (small v) keep full precision.
    shift = min(abs(lo), abs(hi)) ** 2 / (2 * v * v)
    weight = lambda w: np.exp(-w * w / (2 * v * v) + shift)          # noqa: E731
    mass = integrate.quad(weight, lo, hi, epsabs=0, epsrel=1e-12)[0]
    # |bracket| ≤ 4γε on I* and weight ≤ 1 on an interval of width 2ε: an absolute floor far below that scale.
    floor = 1e-12 * gamma * eps * eps
    return integrate.quad(lambda w: bracket(w, eps, gamma) * weight(w), lo, hi, epsabs=floor, epsrel=1e-12)[0] / mass


def reduction_value(eps, ratio, gamma=1.0, sigma=1.0):
    """E[bracket | I*] numerically (the unweighted reduction: σ(−J̃) dropped), numpy-broadcast."""
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (eps, ratio, gamma, sigma)))
    out = np.empty(arrays[0].shape)
    for index in np.ndindex(out.shape):
        out[index] = _reduction_scalar(*(float(a[index]) for a in arrays))
    return out[()]


def reduction_ratio(eps, gamma=1.0, sigma=1.0):
    """The r where E[bracket | I*] changes sign (negative above it), numpy-broadcast; NaN if none.

    It depends only on ε/γ and σr/γ; as ε → 0 it tends to γ/(√2·σ). Searched over σr/γ ∈ [0.02, 50].
    """
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (eps, gamma, sigma)))
    out = np.empty(arrays[0].shape)
    for index in np.ndindex(out.shape):
        e, g, s = (float(a[index]) for a in arrays)
        out[index] = log_root(lambda r: _reduction_scalar(e, r, g, s), 0.02 * g / s, 50.0 * g / s)
    return out[()]


def log_root(func, lo, hi, xtol=1e-7):
    """The r in [lo, hi] where func changes sign (Brent in log r, so `xtol` is relative); NaN if the ends
    share a sign."""
    f_lo, f_hi = func(lo), func(hi)
    if not f_lo * f_hi < 0:
        return float("nan")
    return float(np.exp(brentq(lambda t: func(np.exp(t)), np.log(lo), np.log(hi), xtol=xtol)))
