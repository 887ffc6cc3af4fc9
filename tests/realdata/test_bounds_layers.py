"""BatchNorm, AvgPool2d, Identity and Dropout in every bound method and in dense and patch passes:
BatchNorm against its hand fold, AvgPool against the conv it is, train-mode BatchNorm against
the eval-mode net with the batch's statistics, and soundness over random nets with all of them."""
import copy
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import assert_patches_equal_dense, margins, pgd_margins, relu_inputs
from realdata.bounds import BOUND_METHODS, margin_lower_bounds, preactivation_bounds
from realdata.relaxation import patches
from realdata.relaxation.graph import parse
from realdata.threats import L2, Directions, Linf, random_directions

THREATS = [Linf(0.03), L2(0.3)]
RUNS = [(m, {}) for m in BOUND_METHODS] + [("coap", {"direction": "forward"}), ("coap", {"direction": "backward"})]


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights, biases and BatchNorm statistics (float64, eval mode)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight[0].numel() ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(1 + 0.3 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
    return model.double().eval()


def bn_cnn(seed: int, channels=3, size=16, classes=5, pool=True) -> nn.Sequential:
    """conv–BN–ReLU (–AvgPool) – conv–BN–ReLU – Identity – Flatten – Dropout – FC–BN–ReLU – FC."""
    s = size // 4 if pool else size // 2
    layers = [nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()]
    layers += [nn.AvgPool2d(2)] if pool else []
    layers += [nn.Conv2d(4, 6, 4, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Identity(), nn.Flatten(),
               nn.Dropout(0.3), nn.Linear(6 * s * s, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, classes)]
    return _randomise(nn.Sequential(*layers), seed)


def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """The same function with every eval-mode BatchNorm folded by hand into the layer before it."""
    layers = []
    for m in copy.deepcopy(model):
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            prev = layers[-1]
            scale = m.weight / torch.sqrt(m.running_var + m.eps)
            with torch.no_grad():
                prev.weight.mul_(scale.reshape((-1,) + (1,) * (prev.weight.dim() - 1)))
                prev.bias.copy_((prev.bias - m.running_mean) * scale + m.bias)
        else:
            layers.append(m)
    return nn.Sequential(*layers)


def _batch(shape, classes, seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n,) + shape, generator=g, dtype=torch.float64), torch.randint(classes, (n,), generator=g)


@pytest.mark.slow
@pytest.mark.parametrize("threat", THREATS, ids=str)
def test_eval_batchnorm_gets_the_bounds_of_its_hand_fold(threat):
    model = bn_cnn(0)
    twin = fold_batchnorm(model)
    x, y = _batch((3, 16, 16), 5)
    assert torch.allclose(model(x), twin(x), atol=1e-12)
    graph = parse(model, x)  # the BatchNorm'd conv layers are bounded in patches
    assert any(patches.applicable(graph.prefix(k), threat, x) for k in range(1, graph.num_relus))
    for method, options in RUNS:
        a, b = margin_lower_bounds(model, x, y, threat, method, **options), margin_lower_bounds(twin, x, y, threat, method, **options)
        assert torch.allclose(a, b, rtol=0, atol=1e-6), (method, options, (a - b).abs().max())
        for (l1, u1), (l2, u2) in zip(preactivation_bounds(model, x, threat, method, **options),
                                      preactivation_bounds(twin, x, threat, method, **options)):
            assert torch.allclose(l1, l2, atol=1e-6) and torch.allclose(u1, u2, atol=1e-6), method


def test_avgpool_gets_the_bounds_of_the_conv_it_is():
    model = bn_cnn(1)
    twin = copy.deepcopy(model)
    pool = model[3]
    conv = nn.Conv2d(4, 4, 2, stride=2).double()
    with torch.no_grad():
        conv.weight.copy_(torch.eye(4, dtype=torch.float64)[:, :, None, None].expand(4, 4, 2, 2) / 4)
        conv.bias.zero_()
    twin[3] = conv
    assert isinstance(pool, nn.AvgPool2d)
    x, y = _batch((3, 16, 16), 5)
    for threat in THREATS:
        for method, options in RUNS:
            a, b = margin_lower_bounds(model, x, y, threat, method, **options), margin_lower_bounds(twin, x, y, threat, method, **options)
            assert torch.allclose(a, b, rtol=0, atol=1e-10), (method, options)


@pytest.mark.parametrize("method", ["crown", "coap"])
def test_patches_equal_the_dense_pass_through_batchnorm_and_pooling(method, monkeypatch):
    model = bn_cnn(2)
    x, _ = _batch((3, 16, 16), 5)
    threat = Directions(0.3, random_directions(2, (3, 16, 16), seed=1, dtype=torch.float64))
    assert_patches_equal_dense(model, x, threat, method, monkeypatch)


def test_train_mode_batchnorm_uses_the_clean_batch_statistics():
    """In train mode the bounds are those of the net whose BatchNorm holds the clean batch's
    statistics; computing them is one training-mode forward pass of the model (the running
    statistics move as model(x) moves them), and the gradients reach the BN weights."""
    model = bn_cnn(3, pool=False).train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()  # training-mode dropout has no bounds
    x, y = _batch((3, 16, 16), 5, n=6)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference(x)  # the running statistics one training step's forward pass leaves
    twin = copy.deepcopy(model).eval()
    with torch.no_grad():
        h = x
        for t in twin:
            if isinstance(t, nn.modules.batchnorm._BatchNorm):
                dims = [0] + list(range(2, h.dim()))
                t.running_mean.copy_(h.mean(dims))
                t.running_var.copy_(h.var(dims, unbiased=False))
            h = t(h)
    first = margin_lower_bounds(model, x, y, Linf(0.02), "crown")
    norms = [(m, r) for m, r in zip(model.modules(), reference.modules()) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(torch.equal(m.running_mean, r.running_mean) and torch.equal(m.running_var, r.running_var)
               and m.num_batches_tracked == r.num_batches_tracked for m, r in norms)
    for method in BOUND_METHODS:
        a = margin_lower_bounds(model, x, y, Linf(0.02), method)
        assert torch.allclose(a, margin_lower_bounds(twin, x, y, Linf(0.02), method), atol=1e-10), method
    assert torch.equal(first, margin_lower_bounds(model, x, y, Linf(0.02), "crown"))
    a.sum().backward()
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().sum() > 0


def _random_net(seed: int, kind: str):
    if kind == "cnn":
        return bn_cnn(seed, channels=2, size=8, classes=4), (2, 8, 8)
    layers = [nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.2), nn.Identity(), nn.Linear(10, 8),
              nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 4)]
    return _randomise(nn.Sequential(*layers), seed), (6,)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["mlp", "cnn"]), norm=st.sampled_from(["linf", "l2", "directions"]),
       method=st.sampled_from(BOUND_METHODS), seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.3))
def test_no_point_beats_the_bounds_of_nets_with_batchnorm_and_pooling(kind, norm, method, seed, eps):
    model, shape = _random_net(seed, kind)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((3,) + shape, generator=g, dtype=torch.float64)
    y = torch.randint(4, (3,), generator=g)
    threat = {"linf": Linf(eps), "l2": L2(4 * eps),
              "directions": Directions(4 * eps, random_directions(2, shape, seed=seed, dtype=torch.float64))}[norm]
    with torch.no_grad():
        lower = margin_lower_bounds(model, x, y, threat, method)
        bounds = preactivation_bounds(model, x, threat, method)
    points = [threat.sample(x.shape, generator=g, dtype=x.dtype) for _ in range(8)] + [torch.zeros_like(x)]
    with torch.no_grad():
        found = torch.stack([margins(model, x + d, y) for d in points]).amin(0)
    found = torch.minimum(found, pgd_margins(model, x, y, threat, steps=10, generator=g))
    assert (found >= lower - 1e-9).all(), (found - lower).min()
    for delta in points:
        for (lo, up), z in zip(bounds, relu_inputs(model, x + delta)):
            assert (lo <= z + 1e-9).all() and (z <= up + 1e-9).all()
