"""Exact COAP against the COAP authors' own code (convex_adversarial's DualNetwork)."""
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import cnn, mlp, resnet
from realdata.bounds import margin_lower_bounds, preactivation_bounds, robust_loss
from realdata.relaxation.reference import to_convex_adversarial
from realdata.threats import L2, Linf

if os.environ.get("CI"):  # CI installs every reference package: a missing oracle fails, never skips
    import convex_adversarial
else:
    convex_adversarial = pytest.importorskip("convex_adversarial")

REL = 1e-5

NETS = {
    "mlp": (lambda dt: mlp(0, 12, [20, 16, 10], 5, dt), (12,), 5),
    "mlp-normalize": (lambda dt: mlp(1, 12, [16, 16], 4, dt, normalize=True), (12,), 4),
    "cnn": (lambda dt: cnn(2, dtype=dt), (3, 8, 8), 5),
    "resnet": (lambda dt: resnet(3, width=0.125, size=8, dtype=dt), (3, 8, 8), 10),
}
THREATS = {"linf": (Linf, 0.03, "l1"), "l2": (L2, 0.2, "l2")}


def _reference(model, x, y, eps, norm_type, classes):
    from convex_adversarial import DualNetwork

    net = model if not any(type(m).__name__ == "Normalize" for m in model) else None
    if net is None:  # the reference has no Normalize layer: fold it into the first Linear by hand
        net = _folded(model)
    dual = DualNetwork(to_convex_adversarial(net), x, eps, norm_type=norm_type)
    eye = torch.eye(classes, dtype=x.dtype)
    return dual(eye[y].unsqueeze(1) - eye.unsqueeze(0)).detach()


def _folded(model):
    norm, first = model[0], model[1]
    folded = torch.nn.Linear(first.in_features, first.out_features).to(first.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(first.weight / norm.std)
        folded.bias.copy_(first.bias - first.weight @ (norm.mean / norm.std))
    return torch.nn.Sequential(folded, *list(model)[2:])


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("norm", list(THREATS))
@pytest.mark.parametrize("arch", list(NETS))
def test_exact_coap_equals_dual_network(arch, norm, direction):
    build, shape, classes = NETS[arch]
    model = build(torch.float64)
    g = torch.Generator().manual_seed(5)
    x = torch.rand((3,) + shape, generator=g, dtype=torch.float64)
    y = torch.randint(classes, (3,), generator=g)
    cls, eps, norm_type = THREATS[norm]
    threat = cls(eps)
    ours = margin_lower_bounds(model, x, y, threat, "coap", direction=direction).detach()
    ref = _reference(model, x, y, eps, norm_type, classes)
    assert torch.allclose(ours, ref, rtol=0, atol=REL * float(ref.abs().max()))
    # not vacuous: the relaxation is active somewhere past the first layer
    bounds = preactivation_bounds(model, x, threat, "coap", direction=direction)
    assert any(((lo < 0) & (up > 0)).any() for lo, up in bounds[1:])


def test_float32_matches_reference_in_float32():
    model = cnn(4, dtype=torch.float32)
    g = torch.Generator().manual_seed(6)
    x = torch.rand(4, 3, 8, 8, generator=g)
    y = torch.randint(5, (4,), generator=g)
    ours = margin_lower_bounds(model, x, y, Linf(0.03), "coap").detach()
    ref = _reference(model, x, y, 0.03, "l1", 5)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, ref, rtol=0, atol=REL * float(ref.abs().max()))


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_robust_loss_and_gradients_equal_reference(direction):
    from convex_adversarial import robust_loss as reference_loss

    model = mlp(7, 10, [16, 16], 4)
    g = torch.Generator().manual_seed(8)
    x = torch.rand(6, 10, generator=g, dtype=torch.float64)
    y = torch.randint(4, (6,), generator=g)
    loss, err = robust_loss(model, x, y, L2(0.4), "coap", direction=direction)
    ours = torch.autograd.grad(loss, list(model.parameters()))
    ref_loss, ref_err = reference_loss(model, 0.4, x, y, norm_type="l2")
    ref = torch.autograd.grad(ref_loss, list(model.parameters()))
    assert loss.item() == pytest.approx(ref_loss.item(), rel=REL)
    assert err == pytest.approx(ref_err)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=0, atol=REL * float(b.abs().max()))
