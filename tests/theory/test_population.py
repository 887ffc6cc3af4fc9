"""Population quantities: the worked example, quadrature accuracy, Monte Carlo and simulation checks."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from theory import derivation as dv
from theory import population as pop

WORKED = dict(eps=0.8, ratio=5.0, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0, eta=1.0)


def test_worked_example_of_paper_md():
    step = pop.one_step(**WORKED)
    assert step.grad_at == pytest.approx(-0.0485431, abs=5e-8)
    assert step.grad_relaxed == pytest.approx(-0.0265157, abs=5e-8)
    assert step.risk_init == pytest.approx(0.484126, abs=5e-7)
    assert step.risk_at == pytest.approx(0.483356, abs=5e-7)
    assert step.risk_relaxed == pytest.approx(0.483705, abs=5e-7)
    assert step.risk_at < step.risk_relaxed and step.in_theorem_region
    assert step.risk_gap == pytest.approx(step.risk_relaxed - step.risk_at, rel=1e-9)


def _mpmath_expectations(theta1, s, eps, gamma, a, b, relaxation="coap"):
    """E[g_AT], E[g_r] with 30-digit mpmath quadrature of the same derived integrands."""
    d = dv.derive()
    args = (dv.X1, dv.Z, dv.THETA1, dv.EPS, dv.A, dv.B)
    out = {"at": mpmath.mpf(0), relaxation: mpmath.mpf(0)}
    with mpmath.workdps(30):
        for (obj, y, cell), margin in d.margins.items():
            if obj not in out:
                continue
            j = sp.lambdify(args, dv.to_theta(margin), "mpmath")
            dj = sp.lambdify(args, d.margin_grads[(obj, y, cell)], "mpmath")
            x1, rad = gamma * y, eps * abs(theta1)
            # CROWN's slope switches at p = 0, z = −θ₁x₁: a breakpoint there.
            limits = {"dead": [-mpmath.inf, -rad - theta1 * x1],
                      "unstable": [-rad - theta1 * x1, -theta1 * x1, rad - theta1 * x1],
                      "active": [rad - theta1 * x1, mpmath.inf]}[cell]

            def integrand(z):
                return -dj(x1, z, theta1, eps, a, b) / (1 + mpmath.exp(j(x1, z, theta1, eps, a, b))) \
                    * mpmath.npdf(z, 0, s)
            out[obj] += mpmath.quad(integrand, limits) / 2
    return float(out["at"]), float(out[relaxation]), float(out[relaxation] - out["at"])


@pytest.mark.parametrize("point", [(1.0, 5.0, 0.8, 1.0, 1.0, -0.5), (-0.7, 0.9, 0.3, 2.0, 2.5, -1.2)])
@pytest.mark.parametrize("relaxation", ["coap", "crown"])
def test_quadrature_relative_error_below_1e9(point, relaxation):
    exact = _mpmath_expectations(*point, relaxation)
    grads = pop.expected_gradients(*point, relaxation=relaxation)
    for got, want in zip((grads.at, grads.relaxed, grads.gap), exact):
        assert abs(got - want) <= 1e-9 * abs(want)


@pytest.mark.parametrize("theta1,s,eps,relaxation", [(1.0, 5.0, 0.8, "coap"), (1.0, 1.5, 0.4, "coap"),
                                                      (1.0, 1.5, 0.7, "crown"), (-0.8, 2.0, 0.5, "ibp")])
def test_quadrature_matches_monte_carlo(theta1, s, eps, relaxation):
    rng = np.random.default_rng(11)
    n, gamma, a, b = 400_000, 1.0, 1.0, -0.5
    y = rng.choice([-1.0, 1.0], n)
    z = rng.normal(0.0, s, n)
    g_at, g_coap = dv.loss_gradients(gamma * y, z, y, theta1, eps, a, b, relaxation)
    grads = pop.expected_gradients(theta1, s, eps, gamma, a, b, relaxation)
    for sample, value in ((g_at, grads.at), (g_coap, grads.relaxed), (g_coap - g_at, grads.gap)):
        se = sample.std(ddof=1) / np.sqrt(n)
        assert abs(sample.mean() - value) <= 4 * se, (sample.mean(), value, se)   # IBP: gap exactly 0


def test_robust_risk_matches_simulation_in_d200():
    rng = np.random.default_rng(12)
    d, n, gamma, sigma, eps, a, b = 200, 200_000, 1.0, 1.0, 0.6, 1.0, -0.5
    theta = rng.normal(size=d)
    theta[0] = abs(theta[0])
    errors = 0
    for start in range(0, n, 25_000):
        m = min(25_000, n - start)
        y = rng.choice([-1.0, 1.0], m)
        x = np.concatenate([gamma * y[:, None], sigma * rng.normal(size=(m, d - 1))], axis=1)
        # Exact attack along e₁: the worst case is an endpoint β = ±ε (checked in theory.checks).
        worst = np.min([y * (a * np.maximum((x + beta * np.eye(d)[0]) @ theta, 0) + b) for beta in (-eps, eps)], axis=0)
        errors += int(np.sum(worst <= 0))
    rate = errors / n
    predicted = pop.robust_risk(theta[0], sigma * np.linalg.norm(theta[1:]), eps, gamma, a, b)
    assert abs(rate - predicted) < 4 * np.sqrt(predicted * (1 - predicted) / n)


def test_robust_risk_decreases_in_theta1_below_gamma_only():
    theta1 = np.linspace(0.05, 5, 200)
    for eps in (0.0, 0.3, 0.9):
        assert np.all(np.diff(pop.robust_risk(theta1, 2.0, eps, 1.0, 1.0, -0.5)) < 0)
    assert np.all(np.diff(pop.robust_risk(theta1, 2.0, 1.2, 1.0, 1.0, -0.5)) > 0)


@pytest.mark.parametrize("theta1,delta", [(1.0, 1e-10), (1.0, -1e-25), (0.3, 0.5), (0.2, -0.5)])
def test_risk_increment_has_no_cancellation(theta1, delta):
    s, eps, gamma, a, b = 5.0, 0.8, 1.0, 1.0, -0.5
    with mpmath.workdps(60):
        def risk(t):
            m = gamma * t - eps * abs(t)
            return (mpmath.ncdf((-b / a - m) / s) + mpmath.ncdf((b / a - m) / s)) / 2
        want = float(risk(mpmath.mpf(theta1) + mpmath.mpf(delta)) - risk(mpmath.mpf(theta1)))
    assert pop.risk_increment(theta1, delta, s, eps, gamma, a, b) == pytest.approx(want, rel=1e-9)
    if abs(delta) > 1e-12:
        assert pop.risk_difference(theta1 + delta, theta1, s, eps, gamma, a, b) == pytest.approx(want, rel=1e-5)


def test_one_step_broadcasts_and_grid_counts():
    step = pop.one_step([0.5, 0.8], [[2.0], [5.0], [50.0]])
    assert np.shape(step.risk_gap) == (3, 2)
    grid = pop.risk_gap_grid([0.3, 0.8], [0.1, 5.0, 100.0])
    counts = grid.counts()
    assert counts["cases"] == 6 and counts["in_region"] == 2 and counts["violations_in_region"] == 0
    assert grid.gap[0, 0] < 0 < grid.gap[0, 2]     # at r = 0.1 COAP is better; the theorem needs r large


def test_threshold_ratio_exponents_and_region():
    assert np.isnan(pop.threshold_ratio(0.6))
    t3, t4 = pop.threshold_ratio(0.8), pop.threshold_ratio(0.8, exponent=4)
    assert np.isfinite(t3) and t4 > t3           # γ + ε > 1 here, so the printed ⁴ asks for more
    assert pop.in_theorem_region(0.8, t3 * 1.01) and not pop.in_theorem_region(0.8, t3 * 0.99)
    assert not pop.in_theorem_region(0.6, 1e6) and not pop.in_theorem_region(1.0, 1e6)


def test_critical_ratio_is_the_exact_sign_change_and_below_the_sufficient_threshold():
    r_star = pop.critical_ratio([0.3, 0.8])
    for eps, r in zip((0.3, 0.8), r_star):
        below, above = pop.one_step(eps, [0.98 * r, 1.02 * r]).risk_gap
        assert below < 0 < above
    assert r_star[1] < pop.threshold_ratio(0.8)        # the lemma's condition is sufficient, not sharp
    # At ε = γ the bracket is −W² < 0 on all of I*: COAP's extra gradient never changes sign, so no r*.
    assert np.isnan(pop.critical_ratio(1.0))


def test_reduction_root_tends_to_gamma_over_sqrt2_sigma():
    # Small-ε expansion: E[W² | I*] ≈ γ² + ε²/3 − 2γ²ε²/(3σ²r²), so E[γ²−ε²−W²] = 0 at σr = γ/√2.
    from theory.lemma import reduction_ratio
    assert reduction_ratio(1e-3, 2.0, 0.5) == pytest.approx(2.0 / (np.sqrt(2) * 0.5), rel=1e-4)


def test_one_steps_share_at_and_order_the_relaxations():
    """At the worked example: optimal and IBP step exactly as AT, CROWN ends below AT's risk, COAP above."""
    steps = pop.one_steps(0.8, 5.0, relaxations=tuple(dv.RELAXATIONS))
    assert {s.grad_at for s in steps.values()} == {steps["coap"].grad_at}
    assert steps["optimal"].risk_gap == 0 and steps["ibp"].risk_gap == 0
    assert steps["crown"].risk_gap < 0 < steps["coap"].risk_gap
    assert steps["crown"].as_dict()["grad_crown"] == steps["crown"].grad_relaxed
    with pytest.raises(ValueError, match="relaxations"):
        pop.one_steps(0.8, 5.0, relaxations=("bogus",))
