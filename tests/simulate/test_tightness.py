"""The tightness measure: the mean gap between the exact worst-case margin and a method's certified one."""
import numpy as np
import pytest
import torch

from realdata.methods import CERTIFIED_METHODS, TRAIN_METHODS
from realdata.models import labels_to_sign, one_neuron
from realdata.threats import Directions, basis_direction
from simulate.linear import LinearConfig, build_parser, configs_from_args, run_linear
from simulate.tightness import certified_margin_gap, tightness
from theory import derivation


def _one_neuron_points(d=8, n=400, theta1=0.9, eps=0.7, a=1.0, b=-0.5):
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(d, generator=g, dtype=torch.float64)
    theta[0] = theta1
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (torch.arange(n) % 2)
    x[:, 0] = labels_to_sign(y).double()            # x₁ = γy with γ = 1
    threat = Directions(eps, basis_direction(0, (d,), dtype=torch.float64))
    z = (x[:, 1:] @ theta[1:]).numpy()
    return one_neuron(theta, a, b), x, y, threat, (x[:, 0].numpy(), z, labels_to_sign(y).numpy(), theta1, eps, a, b)


@pytest.mark.parametrize("bound", ["coap", "crown", "ibp"])
def test_gap_on_the_one_neuron_model_is_theorys_exact_looseness(bound):
    """Line search + the engine's bound give exactly mean(J_AT − J_r) of theory's derivation (IBP: 0)."""
    model, x, y, threat, args = _one_neuron_points()
    j_at, j_r = derivation.worst_case_margins(*args, relaxation=bound)
    gap = certified_margin_gap(model, x, y, threat, bound, "line-search")
    assert gap == pytest.approx(float(np.mean(j_at - j_r)), abs=1e-9)
    assert (gap == pytest.approx(0, abs=1e-9)) == (bound == "ibp")


def test_methods_without_a_bound_have_no_tightness():
    model, x, y, threat, _ = _one_neuron_points(n=10)
    assert tightness("at", model, x, y, threat, "line-search")["tightness"] is None
    found = tightness("sabr", model, x, y, threat, "line-search")
    assert found["tightness_bound"] == CERTIFIED_METHODS["sabr"] and found["tightness"] >= 0


def test_every_training_method_is_a_choice_of_the_simulations():
    args = build_parser().parse_args(["--methods", ",".join(TRAIN_METHODS), "--n", "50", "--eps", "4"])
    assert {c.method for c in configs_from_args(args)} == set(TRAIN_METHODS)


@pytest.mark.slow
def test_linear_records_carry_the_tightness_of_each_method(tmp_path):
    tiny = LinearConfig(preset="quick", d=20, n=20, n_test=200, epochs=2, lrs=(0.1,), eps=4.5)
    methods = ("at", "coap", "crown", "ibp")
    records = run_linear([LinearConfig(**{**tiny.__dict__, "method": m}) for m in methods], out=tmp_path,
                         progress=False)
    found = {r["config"]["method"]: r["metrics"] for r in records}
    assert found["at"]["tightness"] is None
    for method in methods[1:]:
        assert found[method]["tightness_bound"] == CERTIFIED_METHODS[method]
        assert found[method]["tightness"] >= 0 and found[method]["tightness_attack"] == "line-search"
