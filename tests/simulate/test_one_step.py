"""One GD step in finite samples agrees with theory's population values, in standard errors."""
import math

import pytest

from simulate.one_step import OneStepConfig, initial_theta, run_one

# docs/PAPER.md §2's worked example (γ = 1, σ = 1, ε = 0.8, θ₁ = 1, r = 5, a = 1, b = −0.5, η = 1),
# with a small d: only θ₁ and r = ‖θ_{2:d}‖/θ₁ enter the population values.
EXAMPLE = OneStepConfig(eps=0.8, gamma=1.0, d=50, theta1=1.0, ratio=5.0, batches=50, n_test=0)


@pytest.fixture(scope="module")
def runs():
    return {n: run_one(OneStepConfig(**{**EXAMPLE.__dict__, "n": n}), progress=False)[0] for n in (2_000, 20_000)}


def test_population_side_is_the_worked_example(runs):
    m = runs[2_000]
    assert m["ratio"] == pytest.approx(5.0, rel=1e-12) and m["theta1_init"] == 1.0
    assert m["grad_at_pop"] == pytest.approx(-0.0485431, abs=2e-7)
    assert m["grad_coap_pop"] == pytest.approx(-0.0265157, abs=2e-7)
    assert m["risk_at_pop"] == pytest.approx(0.483356, abs=2e-6)
    assert m["risk_coap_pop"] == pytest.approx(0.483705, abs=2e-6)
    assert m["in_theorem_region"] and m["coap_worse_pop"]


@pytest.mark.parametrize("n", [2_000, 20_000])
def test_finite_sample_gradients_within_four_standard_errors(runs, n):
    m = runs[n]
    for key in ("grad_at", "grad_coap", "grad_gap", "risk_at", "risk_coap", "risk_gap"):
        assert m[f"{key}_se"] > 0, key
        assert abs(m[f"{key}_z"]) < 4, (key, m[key], m[f"{key}_pop"], m[f"{key}_se"])


def test_standard_errors_shrink_like_one_over_root_n(runs):
    for key in ("grad_at", "grad_coap", "grad_gap"):
        ratio = runs[2_000][f"{key}_se"] / runs[20_000][f"{key}_se"]
        assert 1.8 < ratio < 5.5, (key, ratio)  # √10 ≈ 3.16, batch-means SEs are themselves noisy


def test_stepped_models_exact_robust_error_matches_closed_form():
    m, _, _ = run_one(OneStepConfig(**{**EXAMPLE.__dict__, "n": 1_000, "batches": 10, "n_test": 20_000}),
                      progress=False)
    for method in ("at", "coap"):
        assert abs(m[f"empirical_risk_{method}_z"]) < 4, (method, m[f"empirical_risk_{method}"], m[f"risk_{method}"])


def test_initial_theta_is_seeded_positive_and_pinnable():
    drawn = initial_theta(OneStepConfig(d=30, seed=3))
    assert drawn[0] > 0 and drawn.equal(initial_theta(OneStepConfig(d=30, seed=3)))
    pinned = initial_theta(OneStepConfig(d=30, theta1=2.0, ratio=7.0))
    assert pinned[0] == 2.0 and math.isclose(float(pinned[1:].norm() / pinned[0]), 7.0, rel_tol=1e-12)


@pytest.mark.slow
def test_many_finite_sample_steps_follow_the_population_dynamics():
    """`--steps T`: each step's θ₁ (fresh sample of n points per step) within 4 propagated SEs of
    theory.dynamics' exact population GD, for AT and COAP."""
    from simulate.one_step import report
    config = OneStepConfig(**{**EXAMPLE.__dict__, "d": 20, "n": 8_000, "batches": 40, "steps": 3})
    metrics, history, _ = run_one(config, progress=False)
    assert [row["step"] for row in history] == [1, 2, 3]
    for row in history:
        for method in ("at", "coap"):
            assert row[f"theta1_{method}_se"] > 0
            assert abs(row[f"theta1_{method}_z"]) < 4, (row["step"], method, row)
    assert history[0]["theta1_coap_pop"] == pytest.approx(1.0265157, abs=2e-7)   # the worked example's step
    # SEs accumulate over the steps.
    assert history[-1]["theta1_at_se"] > history[0]["theta1_at_se"]
    for key in ("theta1_at", "theta1_coap", "risk_at", "risk_coap", "risk_gap"):
        assert abs(metrics[f"{key}_z"]) < 4, key
    assert metrics["coap_worse_pop"]
    text = report({"config": {**config.__dict__}, "metrics": metrics, "history": history, "seed": 0})
    assert "3 GD steps" in text and "θ₁ after T steps, COAP" in text


def test_steps_must_be_a_positive_whole_number_and_name_the_record():
    from realdata.errors import UserError
    with pytest.raises(UserError, match="steps"):
        OneStepConfig(steps=0)
    assert OneStepConfig(steps=3).name.endswith("-T3") and "-T" not in OneStepConfig().name
