"""Many population GD steps: agreement with the one-step code, the limits, and the command line."""
import json

import numpy as np
import pytest

from theory import dynamics, population as pop
from theory.errors import run_cli


def test_first_step_is_the_one_step_and_gaps_are_cancellation_free():
    paths = dynamics.trajectories(0.8, 5.0, 3, objectives=("at", "coap", "ibp"))
    step = pop.one_step(0.8, 5.0)
    assert paths["at"].theta1[1] == pytest.approx(step.theta1_at, rel=1e-13)
    assert paths["coap"].theta1[1] == pytest.approx(step.theta1_relaxed, rel=1e-13)
    assert paths["coap"].risk[1] == pytest.approx(step.risk_relaxed, rel=1e-13)
    # Every step recomputes the expectation at the current θ₁.
    s = 5.0
    assert paths["coap"].grad[2] == pytest.approx(pop.expected_gradient("coap", paths["coap"].theta1[2], s, 0.8))
    gaps = dynamics.gaps_to_at(paths, 0.8, 5.0)
    assert gaps["coap"][1] == pytest.approx(step.risk_gap, rel=1e-9) and np.all(gaps["ibp"] == 0)


def test_limits_coap_stalls_at_a_stationary_point_at_runs_off():
    paths = dynamics.trajectories(0.8, 5.0, 2, objectives=("at", "coap"))
    coap = dynamics.limit(paths["coap"], 0.8, 5.0)
    assert coap.theta1 is not None and 2.0 < coap.theta1 < 5.0
    assert abs(pop.expected_gradient("coap", coap.theta1, 5.0, 0.8)) < 1e-12
    # Stable: E[g] < 0 below θ₁* pushes up, > 0 above pushes down.
    assert pop.expected_gradient("coap", 0.9 * coap.theta1, 5.0, 0.8) < 0 < \
        pop.expected_gradient("coap", 1.1 * coap.theta1, 5.0, 0.8)
    at = dynamics.limit(paths["at"], 0.8, 5.0)
    assert at.theta1 is None and at.direction == 1 and at.risk == 0.0 and "grows without bound" in at.describe()


def test_cli_json_and_text(capsys):
    code = run_cli(dynamics.main, ["--steps", "2", "--objectives", "coap,at", "--json", "--quiet"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and list(data["trajectories"]) == ["at", "coap"]
    assert len(data["trajectories"]["coap"]["theta1"]) == 3 and data["trajectories"]["coap"]["limit_theta1"] > 2
    code = run_cli(dynamics.main, ["--steps", "1", "--objectives", "at,crown", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "crown: after 1 steps" in out and "grows without bound" in out


@pytest.mark.parametrize("argv,flag", [(["--steps", "0"], "--steps"), (["--eps", "nan"], "--eps"),
                                       (["--objectives", "at,bogus"], "--objectives"), (["--b", "1"], "--b"),
                                       (["--ratio", "-1"], "--ratio")])
def test_bad_input_is_one_sentence_and_exit_2(argv, flag, capsys):
    code = run_cli(dynamics.main, argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and flag in err
