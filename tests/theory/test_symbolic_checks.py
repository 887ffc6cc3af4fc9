"""Each named check of theory.checks, plus the numeric derivation functions they rest on."""
import numpy as np
import pytest
import sympy as sp

from theory import checks, derivation as dv, lp


@pytest.fixture(scope="module")
def results():
    return {c.name: c for c in checks.run_checks()}


@pytest.mark.parametrize("name", list(checks.CHECKS))
def test_named_check_passes(results, name):
    assert results[name].passed, results[name].detail


def test_findings_record_the_verdicts(results):
    found = checks.findings()
    assert found["threshold_exponent"] == 3
    assert found["printed_f_equals_derivation"] is False
    gamma, eps, sigma, r, u = found["threshold_counterexample_exponent_4"]
    # The counterexample really satisfies the printed (γ+ε)⁴ condition and not the corrected one.
    assert r ** 2 > max((7 * eps - gamma) * (gamma + eps) ** 4 / (4 * sigma ** 2 * (gamma ** 2 - 10 * gamma * eps + 13 * eps ** 2)),
                        (gamma + eps) ** 3 / (12 * sigma ** 2 * eps))
    assert u >= 0
    assert found["lp_on_mismatch"]["lp_minus_coap_min"] > 0


def test_a_failing_check_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(checks.CHECKS, "boom", lambda: 1 / 0)
    (result,) = checks.run_checks(["boom"])
    assert not result.passed and "ZeroDivisionError" in result.detail


def test_zero_test_rejects_a_non_identity():
    assert not checks._is_zero(sp.sin(dv.P) - dv.P)
    assert checks._differs(dv.A * dv.P - dv.P)


def test_mismatch_margin_numbers():
    # y = +1, θ₁ = 1, x₁ = 1, ε = 0.8, z = −1.5: ℓ = −1.3, u = 0.3 — unstable.
    j_at, j_coap = dv.worst_case_margins(1.0, -1.5, 1, 1.0, 0.8, 1.0, -0.5)
    assert j_at == pytest.approx(-0.5)
    assert j_coap == pytest.approx(-0.5 + 0.3 * -1.3 / 1.6)


def test_margins_broadcast_and_agree_with_the_dual_at_coaps_slope():
    x1, z, y, theta1, eps, a, b = lp.random_instances(200, seed=9)
    _, coap = dv.worst_case_margins(x1, z, y, theta1, eps, a, b)
    lower, upper = theta1 * x1 + z - eps * np.abs(theta1), theta1 * x1 + z + eps * np.abs(theta1)
    slope = np.where((lower < 0) & (upper > 0), upper / (upper - lower), 0.5)
    np.testing.assert_allclose(dv.dual_margins_numeric(x1, z, y, theta1, eps, a, b, slope), coap, rtol=1e-12, atol=1e-12)
    j_at, _ = dv.worst_case_margins(1.0, np.zeros((3, 4)), 1, 1.0, 0.5, 1.0, -0.5)
    assert j_at.shape == (3, 4)


def test_loss_gradients_match_finite_differences():
    x1, z, y, theta1, eps, a, b = lp.random_instances(100, seed=5)
    h = 1e-6
    loss = lambda t: [np.log1p(np.exp(-j)) for j in dv.worst_case_margins(x1, z, y, t, eps, a, b)]  # noqa: E731
    plus, minus = loss(theta1 + h), loss(theta1 - h)
    for k, grad in enumerate(dv.loss_gradients(x1, z, y, theta1, eps, a, b)):
        np.testing.assert_allclose(grad, (plus[k] - minus[k]) / (2 * h), atol=1e-5)


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="labels"):
        dv.worst_case_margins(1.0, 0.0, 0, 1.0, 0.5, 1.0, -0.5)


@pytest.mark.parametrize("eps,ratio", [(0.8, 5.0), (0.7, 2.0), (0.3, 0.7)])
def test_f_formulas_against_direct_quadrature(eps, ratio):
    """The closed forms of f (derived and printed) equal a direct truncated-normal quadrature."""
    from scipy import integrate
    from scipy.stats import norm
    from theory import lemma as lm

    gamma, sigma = 1.0, 1.0
    v = sigma * ratio
    lo, hi = -(gamma + eps), -(gamma - eps)
    mass = norm.cdf(hi / v) - norm.cdf(lo / v)

    def mean(func):
        return integrate.quad(lambda w: func(w) * norm.pdf(w / v) / v, lo, hi, epsabs=0, epsrel=1e-12)[0] / mass

    derived = sp.lambdify((dv.EPS, lm.GAMMA, lm.SIGMA, lm.R), lm.REDUCED_F, "scipy")(eps, gamma, sigma, ratio)
    assert derived == pytest.approx(mean(lambda w: gamma ** 2 - eps ** 2 - w ** 2), rel=1e-9)
    printed = lm.numeric_f("printed_f", eps, ratio, gamma, sigma)
    assert printed == pytest.approx(mean(lambda w: gamma ** 2 - eps ** 2 - (gamma + eps) * w - 2 * w ** 2), rel=1e-9)
    assert printed > derived


def test_step4_check_fails_if_the_printed_f_were_the_unweighted_reduction(monkeypatch):
    """The step-4 check compares with the printed f; it must notice a different f."""
    from theory import lemma as lm
    monkeypatch.setattr(lm, "PRINTED_F", lm.REDUCED_F)
    (result,) = checks.run_checks(["printed_f_is_step4_bound"])
    assert not result.passed and "mean over I* is the printed f" in result.detail
