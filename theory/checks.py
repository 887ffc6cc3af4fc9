"""Every named check of the theorem's formulas, each reporting pass/fail and a one-line detail.

Symbolic checks compare the paper's printed formulas (docs/PAPER.md §2, transcribed *here* and in
`theory.lemma`) with the sympy derivation of `theory.derivation`; numeric checks use the lambdified
derivation against independent computations (an LP solver, brute force, root finding, high-precision
arithmetic). `FINDINGS` collects what the checks discovered about the printed proof.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp
from scipy.optimize import brentq
from scipy.special import ndtr

from theory import derivation as dv
from theory import lemma as lm
from theory import lp
from theory.population import robust_risk

__all__ = ["Check", "CHECKS", "run_checks", "findings"]

_T = sp.Symbol("T", positive=True)          # |θ₁|, to check both signs of θ₁ separately
_LOWER, _UPPER = dv.P - dv.RHO, dv.P + dv.RHO
_PRE_T = dv.THETA1 * dv.X1 + dv.Z
_LOWER_T, _UPPER_T = _PRE_T - dv.EPS * sp.Abs(dv.THETA1), _PRE_T + dv.EPS * sp.Abs(dv.THETA1)
_SGN = sp.sign(dv.THETA1)


def _sigmoid(t):
    return 1 / (1 + sp.exp(-t))


@dataclass(frozen=True)
class Check:
    """The outcome of one named check: pass/fail and a one-line statement of what was compared."""

    name: str
    passed: bool
    detail: str


CHECKS = {}


def _check(name):
    """Register a check function returning (passed, detail) under `name`, in definition order."""
    def register(func):
        CHECKS[name] = func
        return func
    return register


def _is_zero(expr):
    """Symbolic zero test: cheap normal forms first (most identities here are rational in exp/erf
    terms), full simplify only if those are inconclusive."""
    expr = sp.sympify(expr)
    if expr == 0 or sp.expand(expr) == 0 or sp.cancel(sp.together(sp.expand(expr))) == 0:
        return True
    return sp.simplify(expr) == 0


def _differs(expr):
    """True if `expr` is provably not identically zero: it is non-zero at a rational point (30 digits).

    Cheaper and more decisive than asking simplify to fail; the point is valid for every check here
    (positive γ, ε, σ, r, a and −b; ε < γ)."""
    point = {s: sp.Rational(3 + k, 11 + 2 * k) for k, s in enumerate(sorted(sp.sympify(expr).free_symbols, key=str))}
    if dv.B in point:
        point[dv.B] = -point[dv.B]
    if lm.GAMMA in point and dv.EPS in point:
        point[lm.GAMMA] = point[dv.EPS] + 1
    value = sp.N(sp.sympify(expr).subs(point), 30)
    return value.is_number and abs(value) > 1e-20


def _equal_both_signs(left, right):
    """left == right as functions of θ₁, checked for θ₁ = +T and θ₁ = −T (T > 0) so |θ₁| and sgn θ₁ resolve."""
    return all(_is_zero((left - right).subs(dv.THETA1, s * _T)) for s in (1, -1))


def _paper_at_margin(y):
    """docs/PAPER.md §2: y = +1: b + a·max(0, ℓ); y = −1: −(b + a·max(0, u))."""
    return dv.B + dv.A * sp.Max(0, _LOWER) if y == 1 else -(dv.B + dv.A * sp.Max(0, _UPPER))


# ------------------------------------------------------------------------------------------------ AT

@_check("at_minimum_at_endpoint")
def _at_endpoint():
    slopes = {y: dv.endpoint_slopes(y) for y in dv.LABELS}
    ok = all((y * s).is_nonnegative for y, pair in slopes.items() for s in pair)
    return ok, (f"slopes of y·f along the segment (q<0, q>0): y=+1 {slopes[1]}, y=−1 {slopes[-1]}: "
                "never against sgn(y·a), so min over |β| ≤ ε is at an endpoint")


@_check("at_margin_matches_paper")
def _at_margin_paper():
    d = dv.derive()
    bad = [(y, c) for y in dv.LABELS for c in dv.CELLS
           if not _is_zero(d.margins[("at", y, c)] - dv.in_cell(_paper_at_margin(y), c))]
    return not bad, "derived min over β equals b + a·max(0,ℓ) (y=+1), −(b + a·max(0,u)) (y=−1) in all 6 (y, cell)" \
        if not bad else f"differs in {bad}"


@_check("at_brute_force")
def _at_brute_force():
    x1, z, y, theta1, eps, a, b = lp.random_instances(400, seed=1)
    beta = np.linspace(-1.0, 1.0, 2001)[:, None] * eps
    pre = theta1 * x1 + z + beta * theta1
    brute = np.min(y * (a * np.maximum(pre, 0.0) + b), axis=0)
    exact, _ = dv.worst_case_margins(x1, z, y, theta1, eps, a, b)
    err = float(np.max(np.abs(brute - exact)))
    return err < 1e-12, f"lambdified J_AT vs min over a 2001-point β grid on 400 random instances: max |Δ| = {err:.1e}"


# ---------------------------------------------------------------------------------------------- COAP

@_check("coap_equals_at_off_mismatch")
def _coap_off_mismatch():
    d = dv.derive()
    cells = [(y, c) for y in dv.LABELS for c in dv.CELLS if (y, c) != (1, "unstable")]
    bad = [(y, c) for y, c in cells
           if not (_is_zero(d.margins[("at", y, c)] - d.margins[("coap", y, c)])
                   and _equal_both_signs(d.margin_grads[("at", y, c)], d.margin_grads[("coap", y, c)]))]
    return not bad, ("margins and θ₁-gradients identical in the 5 (y, cell) outside I* = {a·y>0, ℓ<0<u}"
                     if not bad else f"differ in {bad}")


@_check("coap_margin_on_mismatch")
def _coap_on_mismatch():
    d = dv.derive()
    target = dv.B + dv.A * _UPPER * _LOWER / (_UPPER - _LOWER)
    equal = _is_zero(d.margins[("coap", 1, "unstable")] - target)
    below = dv.in_cell(d.margins[("coap", 1, "unstable")] - d.margins[("at", 1, "unstable")], "unstable")
    forward, _ = dv.CELL_PARAMS["unstable"]
    strictly = sp.simplify(below.subs(forward, simultaneous=True)).is_negative
    return bool(equal and strictly), (f"on I*: J_COAP = {d.margins[('coap', 1, 'unstable')]} = b + a·uℓ/(u−ℓ), "
                                      f"J_AT = {d.margins[('at', 1, 'unstable')]}; COAP strictly lower: {strictly}")


@_check("coap_gradient_matches_prop_b2")
def _prop_b2():
    d = dv.derive()
    j_tilde = dv.to_theta(d.margins[("coap", 1, "unstable")])
    printed = (-dv.A * 1 * _sigmoid(-j_tilde) / (2 * dv.EPS)
               * ((_LOWER_T / sp.Abs(dv.THETA1)) * (dv.X1 + dv.EPS * _SGN)
                  + _UPPER_T * (dv.X1 * sp.Abs(dv.THETA1) - _PRE_T * _SGN) / dv.THETA1 ** 2))
    ok = _equal_both_signs(d.loss_grads[("coap", 1, "unstable")], printed)
    return ok, "sympy.diff of log(1+e^{−J̃}) equals the printed Prop B.2 gradient on I*, both signs of θ₁"


@_check("at_gradient_zero_on_mismatch")
def _at_zero():
    g = dv.derive().loss_grads[("at", 1, "unstable")]
    return g == 0, f"∂/∂θ₁ log(1+e^{{−J_AT}}) on I* = {g}"


@_check("at_gradient_matches_paper")
def _at_gradient_paper():
    d = dv.derive()
    # 1{ℓ>0} is 1 only in the active cell; 1{u>0} in the active and unstable cells.
    indicator = {(1, "dead"): 0, (1, "unstable"): 0, (1, "active"): 1,
                 (-1, "dead"): 0, (-1, "unstable"): 1, (-1, "active"): 1}
    bad = []
    for (y, c), ind in indicator.items():
        j = dv.to_theta(d.margins[("at", y, c)])
        shift = -dv.EPS * _SGN if y == 1 else dv.EPS * _SGN
        printed = -y * _sigmoid(-j) * dv.A * (dv.X1 + shift) * ind
        if not _equal_both_signs(d.loss_grads[("at", y, c)], printed):
            bad.append((y, c))
    return not bad, ("AT's θ₁-gradient equals −y·σ(−J)·a(x₁ ∓ ε sgn θ₁)·1{ℓ>0 | u>0} in all 6 (y, cell)"
                     if not bad else f"differs in {bad}")


@_check("loss_gradient_factorises")
def _factorises():
    d = dv.derive()
    bad = [k for k in d.loss_grads
           if not _equal_both_signs(d.loss_grads[k], -_sigmoid(-dv.to_theta(d.margins[k])) * d.margin_grads[k])]
    return not bad, ("sympy.diff(log(1+e^{−J}), θ₁) = −σ(−J)·∂J/∂θ₁ in all 12 (objective, y, cell) — the form "
                     "evaluated numerically" if not bad else f"fails in {bad}")


# ------------------------------------------------------------------------------------ the proof's lemma

@_check("mismatch_bracket")
def _bracket():
    bracket = lm.mismatch_bracket()
    target = lm.GAMMA ** 2 - dv.EPS ** 2 - lm.W ** 2
    ok = _is_zero(bracket - target)
    return ok, (f"on I*: ∂L_COAP/∂θ₁ = −a·σ(−J̃)/(2ε)·({bracket}) with W = Z/θ₁; the sign of E[g_COAP·1{{I*}}] is "
                "−sign E[σ(−J̃)·bracket]")


@_check("truncated_moments")
def _moments():
    t = sp.Symbol("t", real=True)          # the variable of lemma.normal_antiderivative
    antideriv = all(_is_zero(sp.diff(lm.normal_antiderivative(k), t) - t ** k * lm.std_pdf(t)) for k in range(3))
    al, be, v = lm.ALPHA_T, lm.BETA_T, lm.V
    mass = lm.std_cdf(be) - lm.std_cdf(al)
    first = _is_zero(lm.truncated_moment(1) - v * (lm.std_pdf(al) - lm.std_pdf(be)) / mass)
    second = _is_zero(lm.truncated_moment(2) - v ** 2 * (1 + (al * lm.std_pdf(al) - be * lm.std_pdf(be)) / mass))
    return antideriv and first and second, ("d/dt of each antiderivative is t^k·φ(t); E[W], E[W²] on I* equal "
                                            "the truncated-normal formulas with α, β")


@_check("f_reduction")
def _f_reduction():
    derived = lm.derived_f(lm.mismatch_bracket())
    ok = _is_zero(derived - lm.REDUCED_F)
    return ok, ("E[bracket | I*] = γ²−ε²−σ²r² − σr[(γ−ε)φ(β) − (γ+ε)φ(α)]/[Φ(β)−Φ(α)] (the weight σ(−J̃) "
                "dropped); the printed f(r) is a different, valid quantity: see printed_f_is_step4_bound")


def _on_mismatch_set():
    """(ℓ/θ₁, u/θ₁, positive): the pre-activation bounds from the derivation with x₁ = γ, z = θ₁W, θ₁ > 0,
    and a test that an expression in W, γ, ε, a, b is positive on all of I* for ε < γ.

    The test writes I* on sign-definite symbols — W = −(γ+ε) + 2ε·p/(p+q) with p, q > 0 (so the
    position p/(p+q) runs over (0, 1)) and γ = ε + δ — and asks sympy for the sign of the factored result."""
    p, q, delta = sp.symbols("p q delta", positive=True)
    theta = sp.Symbol("theta", positive=True)
    point = {dv.X1: lm.GAMMA, dv.Z: theta * lm.W, dv.THETA1: theta}
    lower, upper = (sp.simplify(bound.subs(point, simultaneous=True) / theta) for bound in (_LOWER_T, _UPPER_T))
    on_set = {lm.W: -(lm.GAMMA + dv.EPS) + 2 * dv.EPS * p / (p + q)}

    def positive(expr):
        return bool(sp.factor(sp.together(expr.subs(on_set).subs(lm.GAMMA, dv.EPS + delta))).is_positive)
    return lower, upper, positive


@_check("printed_f_is_step4_bound")
def _printed_f():
    """Step 4 of the proof: σ(−J̃) ≥ ½ on the positive term −ℓ(γ+ε), σ(−J̃) ≤ 1 on the negative term uZ/θ₁."""
    lower, upper, positive = _on_mismatch_set()
    m, n = sp.symbols("m n", positive=True)
    sig = sp.Symbol("s", positive=True)                                  # σ(−J̃)
    # The derived COAP loss gradient on I* splits into the proof's two terms (each over θ₁):
    grad = -sig * dv.A / (2 * dv.EPS) * lm.mismatch_bracket()
    split = sig * dv.A / (2 * dv.EPS) * (-lower * (lm.GAMMA + dv.EPS) + upper * lm.W)
    splits = _is_zero(grad - split)
    # Step 4's bound, expanded, is −½·a/(2ε)·(the printed integrand):
    step4 = dv.A / (2 * dv.EPS) * (-lower * (lm.GAMMA + dv.EPS) / 2 + upper * lm.W)
    integrand = lm.GAMMA ** 2 - dv.EPS ** 2 - (lm.GAMMA + dv.EPS) * lm.W - 2 * lm.W ** 2
    expands = _is_zero(step4 + dv.A / (4 * dv.EPS) * integrand)
    # ... and its conditional expectation over I* is exactly the printed f(r):
    printed = _is_zero(lm.derived_f(integrand) - lm.PRINTED_F)
    # Signs on I* (ε < γ): ℓ < 0 < u and W < 0; J̃ = b + a·uℓ/(u−ℓ) < b < 0, so ½ < σ(−J̃) < 1.
    signs = positive(-lower) and positive(upper) and positive(-lm.W) and positive(-(dv.B + dv.A * upper * lower
                                                                                       / (upper - lower)))
    # Hence grad − step4 = a/(2ε)·[(σ−½)(−ℓ)(γ+ε) + (σ−1)·u·W] ≥ 0, term by term (σ−½ = m > 0, σ−1 = −n < 0):
    rest = _is_zero(split - step4 - dv.A / (2 * dv.EPS) * ((sig - sp.Rational(1, 2)) * -lower * (lm.GAMMA + dv.EPS)
                                                          + (sig - 1) * upper * lm.W))
    terms = positive(m * -lower * (lm.GAMMA + dv.EPS)) and positive(-n * upper * lm.W)
    FINDINGS["printed_f_equals_derivation"] = not _differs(lm.PRINTED_F - lm.derived_f(lm.mismatch_bracket()))
    FINDINGS["printed_f_integrand"] = "γ²−ε²−(γ+ε)W−2W²"
    FINDINGS["derived_f_integrand"] = str(lm.mismatch_bracket())
    FINDINGS["printed_f_reading"] = ("step 4's lower bound: E[g_COAP·1{I*}] ≥ −a/(4ε)·P(I*)·f(r), so f(r) < 0 "
                                     "implies COAP's extra expected gradient on I* is positive (a valid inequality)")
    parts = {"gradient splits into the two terms": splits, "step-4 bound expands to −½·integrand": expands,
             "its mean over I* is the printed f": printed, "signs on I*": signs, "remainder": rest,
             "remainder ≥ 0 term by term": terms}
    failed = [name for name, holds in parts.items() if not holds]
    if failed:
        return False, f"step 4's inequality not established: {', '.join(failed)} failed"
    return True, ("the printed f(r) is step 4's bound, a valid inequality: the derived gradient on I* is "
                  "a·σ(−J̃)/(2ε)·[−(ℓ/θ₁)(γ+ε) + (u/θ₁)W]; σ(−J̃) ≥ ½ on the positive first term and ≤ 1 on the "
                  "negative second (J̃ < b < 0 on I*) give ≥ −a/(4ε)·(γ²−ε²−(γ+ε)W−2W²), whose mean over I* is "
                  "exactly the printed f(r); so f(r) < 0 ⇒ E[g_COAP − g_AT] > 0")


@_check("lemma_bound_holds")
def _lemma_bound():
    diff = sp.lambdify((dv.EPS, lm.GAMMA, lm.SIGMA, lm.R), lm.PRINTED_U - lm.PRINTED_F, "mpmath")
    second = sp.lambdify((dv.EPS, lm.GAMMA, lm.SIGMA), lm.printed_threshold_sq()[1], "mpmath")
    worst = mpmath.inf
    with mpmath.workdps(40):                                # f cancels 2σ²r² against itself at large r
        for e in np.linspace(0.15, 0.99, 15):
            r0 = mpmath.sqrt(second(mpmath.mpf(e), 1, 1))
            for k in np.linspace(0.001, 3.0, 12):
                worst = min(worst, diff(mpmath.mpf(e), 1, 1, r0 * mpmath.power(10, mpmath.mpf(k))))
    ok = worst >= 0
    return ok, (f"u(r) − f(r) ≥ 0 for ε/γ ∈ [0.15, 0.99] and (γ+ε)³/(12σ²ε) < r² ≤ 10⁶× that (min {float(worst):.2e}; "
                "40-digit arithmetic; both depend only on ε/γ and σr/γ, so γ = σ = 1 loses nothing)")


@_check("lemma_root")
def _root():
    roots = sp.solve(13 * dv.EPS ** 2 - 10 * lm.GAMMA * dv.EPS + lm.GAMMA ** 2, dv.EPS)
    expected = {(5 - 2 * sp.sqrt(3)) * lm.GAMMA / 13, (5 + 2 * sp.sqrt(3)) * lm.GAMMA / 13}
    limit_u = sp.factor(sp.limit(lm.PRINTED_U, lm.R, sp.oo))
    below = bool(sp.Rational(2, 3) > (5 + 2 * sp.sqrt(3)) / 13)
    ok = set(map(sp.simplify, roots)) == set(map(sp.simplify, expected)) and below
    return ok, (f"u(∞) = {limit_u} < 0 iff ε > (5+2√3)γ/13 ≈ {float((5 + 2 * sp.sqrt(3)) / 13):.4f}γ "
                "(the larger root; < 2γ/3, so the theorem's range is inside the lemma's)")


def _threshold_counterexample():
    """A point where the printed (γ+ε)⁴ condition holds but u(r) ≥ 0, so it is not sufficient."""
    u = sp.lambdify((dv.EPS, lm.GAMMA, lm.SIGMA, lm.R), lm.PRINTED_U)
    gamma, eps, sigma = 0.5, 0.4, 1.0        # γ + ε < 1 makes the ⁴-version the smaller one
    t3, t4 = (float(max(v.subs({lm.GAMMA: gamma, dv.EPS: eps, lm.SIGMA: sigma}) for v in lm.printed_threshold_sq(k)))
              for k in (3, 4))
    r = float(np.sqrt((t3 + t4) / 2))
    return (gamma, eps, sigma, r, float(u(eps, gamma, sigma, r))) if t4 < r * r < t3 else None


@_check("threshold_exponent")
def _exponent():
    numerator, denominator = sp.fraction(sp.together(lm.PRINTED_U))
    r2 = sp.Symbol("r2", positive=True)
    roots = [sp.solve(sp.expand(e).subs(lm.R ** 2, r2), r2) for e in (numerator, denominator)]
    derived = (roots[0][0], roots[1][0]) if all(len(x) == 1 for x in roots) else None
    fits = {k: derived is not None and all(_is_zero(p - q) if k == 3 else not _differs(p - q)
                                           for p, q in zip(derived, lm.printed_threshold_sq(k)))
            for k in (3, 4)}
    # r² is dimensionless: each term must be homogeneous of degree 0 in (γ, ε, σ).
    c = sp.Symbol("c", positive=True)
    scale = {lm.GAMMA: c * lm.GAMMA, dv.EPS: c * dv.EPS, lm.SIGMA: c * lm.SIGMA}
    degree = {k: sp.cancel(lm.printed_threshold_sq(k)[0].subs(scale, simultaneous=True)
                           / lm.printed_threshold_sq(k)[0]) for k in (3, 4)}
    counter = _threshold_counterexample()
    FINDINGS["threshold_exponent"] = 3 if fits[3] and not fits[4] else None
    FINDINGS["threshold_counterexample_exponent_4"] = counter
    ok = fits[3] and not fits[4] and degree[3] == 1 and degree[4] == c and counter is not None and counter[-1] >= 0
    detail = (f"u(r) < 0 ⇔ r² > max{{{derived[0]}, {derived[1]}}}: exponent 3 (the ⁴ prints a typo; it is "
              f"also not scale-free: scales as {degree[4]}); at γ={counter[0]}, ε={counter[1]}, σ={counter[2]}, "
              f"r={counter[3]:.4f} the ⁴-condition holds yet u = {counter[4]:.3f} ≥ 0") if ok else \
        f"derived roots {derived}; fits exponent 3: {fits[3]}, 4: {fits[4]}; counterexample {counter}"
    return ok, detail


# ----------------------------------------------------------------------------------------- robust risk

@_check("robust_risk_formula")
def _risk_formula():
    theta1, s = sp.symbols("theta1 s", positive=True)
    gamma, eps = lm.GAMMA, dv.EPS
    printed = (lm.std_cdf(-(gamma - eps) * theta1 / s - dv.B / (dv.A * s))
               + lm.std_cdf(-(gamma - eps) * theta1 / s + dv.B / (dv.A * s))) / 2
    delta = sp.Symbol("delta", positive=True)          # ε < γ written as γ = ε + δ
    slope = sp.simplify(sp.diff(printed, theta1).subs(gamma, eps + delta))
    decreasing = bool(slope.is_negative)
    func = sp.lambdify((theta1, s, eps, gamma, dv.A, dv.B), printed, "scipy")
    rng = np.random.default_rng(2)
    args = (rng.uniform(0.1, 3, 50), rng.uniform(0.1, 5, 50), rng.uniform(0, 2, 50), rng.uniform(0.1, 2, 50),
            rng.uniform(0.2, 3, 50), -rng.uniform(0.05, 2, 50))
    err = float(np.max(np.abs(func(*args) - robust_risk(*args))))
    return decreasing and err < 1e-14, (f"robust_risk equals the printed R_ε for θ₁ > 0 (max |Δ| {err:.0e}); "
                                        f"∂R_ε/∂θ₁ = {slope} < 0 for ε < γ")


@_check("robust_risk_from_margins")
def _risk_from_margins():
    """R_ε = P(J_AT ≤ 0), with the boundary found by root-finding on the derived margin (any sign of θ₁)."""
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(16):
        theta1 = rng.choice([-1, 1]) * rng.uniform(0.2, 3)
        s, eps, gamma, a, b = rng.uniform(0.3, 4), rng.uniform(0, 1.5), rng.uniform(0.2, 2), rng.uniform(0.2, 3), \
            -rng.uniform(0.05, 2)
        prob = 0.0
        for y in (1, -1):
            def margin(z, y=y):
                return float(dv.worst_case_margins(gamma * y, z, y, theta1, eps, a, b)[0][()]) - 1e-300
            span = 50.0 * (s + abs(theta1) * (gamma + eps) + abs(b) / a)
            root = brentq(margin, -span, span, xtol=1e-14, rtol=1e-15)
            # J_AT is monotone in z (increasing for y=+1, decreasing for y=−1): errors lie on one side.
            prob += 0.5 * (ndtr(root / s) if y == 1 else ndtr(-root / s))
        worst = max(worst, abs(prob - float(robust_risk(theta1, s, eps, gamma, a, b))))
    return worst < 1e-12, f"closed form vs P(J_AT ≤ 0) by root-finding on 16 random settings: max |Δ| = {worst:.1e}"


# -------------------------------------------------------------------------------------- LP ground truth

@functools.lru_cache(maxsize=1)
def _lp_table(n=60):
    inst = lp.random_instances(n, seed=4)
    x1, z, y, theta1, eps, a, b = inst
    lp_value = np.array([lp.triangle_lp_margin(*(float(v[i]) for v in inst)) for i in range(n)])
    exact, coap = dv.worst_case_margins(*inst)
    best = np.maximum(dv.dual_margins_numeric(*inst, 0.0), dv.dual_margins_numeric(*inst, 1.0))
    mismatch = (y == 1) & (dv.cell_of(x1, z, theta1, eps) == dv.CELLS.index("unstable"))
    scale = 1.0 + np.abs(lp_value)
    return dict(lp=lp_value, exact=exact, coap=coap, best=best, mismatch=mismatch, scale=scale)


@_check("lp_dual_is_sound")
def _lp_sound():
    t = _lp_table()
    ok = bool(np.all(t["coap"] <= t["lp"] + 1e-9 * t["scale"]) and np.all(t["lp"] <= t["exact"] + 1e-9 * t["scale"]))
    return ok, f"COAP dual ≤ LP optimum ≤ exact worst case on all {t['lp'].size} random instances (scipy HiGHS)"


@_check("lp_equals_dual_off_mismatch")
def _lp_off():
    t = _lp_table()
    off = ~t["mismatch"]
    err = float(np.max(np.abs(t["coap"] - t["lp"])[off] / t["scale"][off]))
    return err < 1e-8, f"off I* ({int(off.sum())} instances) COAP dual = LP optimum: max rel |Δ| = {err:.1e}"


@_check("lp_equals_at_on_mismatch")
def _lp_on():
    t = _lp_table()
    on = t["mismatch"]
    err = float(np.max(np.abs(t["exact"] - t["lp"])[on] / t["scale"][on]))
    gap = (t["lp"] - t["coap"])[on]
    ok = err < 1e-8 and bool(np.all(gap > 1e-9))
    FINDINGS["lp_on_mismatch"] = {"instances": int(on.sum()), "lp_minus_at_max_abs": err,
                                  "lp_minus_coap_min": float(gap.min()), "lp_minus_coap_max": float(gap.max())}
    return ok, (f"on I* ({int(on.sum())} instances) LP optimum = AT's b (max rel |Δ| {err:.1e}) while COAP's fixed "
                f"slope is strictly lower by {gap.min():.3g}…{gap.max():.3g}: the gap is COAP's slope, "
                "not the relaxation")


@_check("best_slope_dual_equals_lp")
def _best_slope():
    affine = all(sp.Poly(dv.dual_margin(y, "unstable", dv.ALPHA), dv.ALPHA).degree() <= 1 for y in dv.LABELS)
    t = _lp_table()
    err = float(np.max(np.abs(t["best"] - t["lp"]) / t["scale"]))
    return affine and err < 1e-8, (f"the dual is affine in the lower slope α, so its best α ∈ {{0, 1}}; that dual "
                                   f"equals the LP optimum on every instance (max rel |Δ| {err:.1e}: strong duality)")


# ---------------------------------------------------------------------------------------------- running

FINDINGS: dict = {}


def run_checks(names=None):
    """Run the named checks (all by default) in order; an exception counts as a failure with its message."""
    results = []
    for name in names or CHECKS:
        try:
            passed, detail = CHECKS[name]()
        except Exception as err:            # a crashing check must show up as a failed check, not abort the run
            passed, detail = False, f"raised {type(err).__name__}: {err}"
        results.append(Check(name, bool(passed), detail))
    return results


def findings():
    """What the checks found about the printed proof (filled in as the checks run)."""
    return dict(FINDINGS)


# The relaxations beyond COAP register their checks here too (after everything above is defined).
from theory import relaxation_checks  # noqa: E402,F401
