"""The theorem's one-neuron model with Directions(ε, [e₁]): COAP's bound is the closed form
b + a·uℓ/(u − ℓ) on the mismatch set {y = +1, ℓ < 0 < u} and AT's worst-case margin elsewhere."""
import numpy as np
import pytest
import torch

from realdata.bounds import margin_lower_bounds, preactivation_bounds
from realdata.models import labels_to_sign, one_neuron
from realdata.threats import Directions, basis_direction
from theory import derivation


D = 6


def _inputs(theta, x1, z):
    """Points with signal coordinate x1 and θ_{2:d}ᵀx_{2:d} = z."""
    rest = theta[1:]
    x = torch.zeros(len(x1), D, dtype=torch.float64)
    x[:, 0] = x1
    x[:, 1:] = z.unsqueeze(1) * rest / rest.dot(rest)
    return x


@pytest.mark.parametrize("theta1", [0.7, -0.4])
def test_coap_matches_the_closed_form_and_the_theory_module(theta1):
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(D, generator=g, dtype=torch.float64)
    theta[0] = theta1
    a, b, eps = 1.3, -0.4, 0.8
    model = one_neuron(theta, a, b)
    x1 = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64).repeat_interleave(14)
    z = torch.linspace(-2.0, 2.0, 14, dtype=torch.float64).repeat(13)
    x = _inputs(theta, x1, z)
    cls = torch.arange(len(x)) % 2
    sign = labels_to_sign(cls).double()
    threat = Directions(eps, basis_direction(0, (D,), dtype=torch.float64))

    with torch.no_grad():
        margin = margin_lower_bounds(model, x, cls, threat, "coap").gather(1, (1 - cls).unsqueeze(1)).squeeze(1)
        (lo, up), = preactivation_bounds(model, x, threat, "coap")
    lo, up = lo.squeeze(1), up.squeeze(1)
    pre = x @ theta
    assert torch.allclose(lo, pre - eps * abs(theta1)) and torch.allclose(up, pre + eps * abs(theta1))

    mismatch = (sign > 0) & (lo < 0) & (up > 0)
    assert mismatch.any() and (~mismatch).any()
    closed = b + a * up * lo / (up - lo)
    at = torch.where(sign > 0, b + a * lo.clamp(min=0), -(b + a * up.clamp(min=0)))
    assert torch.allclose(margin[mismatch], closed[mismatch], atol=1e-12)
    assert torch.allclose(margin[~mismatch], at[~mismatch], atol=1e-12)

    j_at, j_coap = derivation.worst_case_margins(x1.numpy(), z.numpy(), sign.numpy(), theta1, eps, a, b)
    j_at, j_coap = np.broadcast_to(j_at, x1.shape), np.broadcast_to(j_coap, x1.shape)
    assert np.allclose(margin.numpy(), j_coap, atol=1e-10)
    assert np.allclose(at.numpy(), j_at, atol=1e-10)


@pytest.mark.parametrize("method", ["crown", "ibp"])
@pytest.mark.parametrize("theta1", [0.7, -0.4])
def test_engine_matches_the_derived_relaxation(method, theta1):
    """realdata's CROWN and IBP bounds on the one-neuron model equal theory's derived margins (an
    independent oracle for `theory.derivation.RELAXATIONS`, which theory itself cannot import)."""
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(D, generator=g, dtype=torch.float64)
    theta[0] = theta1
    a, b, eps = 0.9, -0.3, 0.7
    model = one_neuron(theta, a, b)
    x1 = torch.linspace(-1.5, 1.5, 11, dtype=torch.float64).repeat_interleave(12)
    z = torch.linspace(-2.0, 2.0, 12, dtype=torch.float64).repeat(11)
    x = _inputs(theta, x1, z)
    cls = torch.arange(len(x)) % 2
    sign = labels_to_sign(cls).double()
    threat = Directions(eps, basis_direction(0, (D,), dtype=torch.float64))
    with torch.no_grad():
        margin = margin_lower_bounds(model, x, cls, threat, method).gather(1, (1 - cls).unsqueeze(1)).squeeze(1)
    _, derived = derivation.worst_case_margins(x1.numpy(), z.numpy(), sign.numpy(), theta1, eps, a, b, method)
    pre = (x @ theta).numpy()
    unstable = (sign.numpy() > 0) & (np.abs(pre) < eps * abs(theta1))
    assert unstable.any()
    np.testing.assert_allclose(margin.numpy(), np.broadcast_to(derived, x1.shape), atol=1e-10)
