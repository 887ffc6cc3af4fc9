"""Soundness: no point of the threat set — random or found by PGD — beats a bound.

Property-based over random networks (MLPs, CNNs with a folded Normalize, a
reduced Wong ResNet), every method and every threat model.
"""
import sys
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import cnn, margins, mlp, pgd_margins, relu_inputs, resnet
from realdata.bounds import BOUND_METHODS, margin_lower_bounds, preactivation_bounds
from realdata.threats import L2, Directions, Linf, random_directions

TOL = 1e-9  # float64 rounding only


def _net(kind, seed, normalize):
    if kind == "mlp":
        return mlp(seed, 6, [10, 8], 4, normalize=normalize), (6,), 4
    if kind == "cnn":
        return cnn(seed, channels=2, size=8, classes=5, normalize=normalize), (2, 8, 8), 5
    return resnet(seed, width=0.125, size=8, classes=3, normalize=normalize), (3, 8, 8), 3


def _threat(kind, eps, shape, seed):
    if kind == "linf":
        return Linf(eps)
    if kind == "l2":
        return L2(4 * eps)
    return Directions(4 * eps, random_directions(2, shape, seed=seed, dtype=torch.float64))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["mlp", "cnn", "resnet"]), norm=st.sampled_from(["linf", "l2", "directions"]),
       method=st.sampled_from(BOUND_METHODS + ("coap-proj",)), seed=st.integers(0, 10_000),
       eps=st.floats(0.01, 0.3), normalize=st.booleans(), beta=st.floats(0, 1))
def test_no_point_of_the_threat_set_beats_the_bounds(kind, norm, method, seed, eps, normalize, beta):
    model, shape, classes = _net(kind, seed, normalize)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((3,) + shape, generator=g, dtype=torch.float64)
    y = torch.randint(classes, (3,), generator=g)
    threat = _threat(norm, eps, shape, seed)
    options = {"beta": beta} if method == "crown-ibp" else {}
    if method == "coap-proj":
        # projections estimate the bounds; with more projections than columns they fall back to exact
        method, options = "coap", {"proj": 10_000}
    with torch.no_grad():
        lower = margin_lower_bounds(model, x, y, threat, method, **options)
        bounds = preactivation_bounds(model, x, threat, method, **options)
    assert lower.shape == (3, classes)
    assert (lower.gather(1, y.unsqueeze(1)) == 0).all()

    # random points of the set, the centre and PGD's best point
    points = [threat.sample(x.shape, generator=g, dtype=x.dtype) for _ in range(8)] + [torch.zeros_like(x)]
    with torch.no_grad():
        found = torch.stack([margins(model, x + d, y) for d in points]).amin(0)
    found = torch.minimum(found, pgd_margins(model, x, y, threat, steps=10, generator=g))
    assert (found >= lower - TOL).all(), (found - lower).min()

    assert len(bounds) == len(relu_inputs(model, x))
    for delta in points:
        for (lo, up), z in zip(bounds, relu_inputs(model, x + delta)):
            assert lo.shape == z.shape
            assert (lo <= z + TOL).all() and (z <= up + TOL).all()
