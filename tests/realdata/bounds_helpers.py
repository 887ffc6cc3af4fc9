"""Random networks, a reference-network converter and a small PGD for the bounds tests."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from realdata.layers import Normalize
from realdata.models import build_model


def mlp(seed: int, d: int, widths, classes: int, dtype=torch.float64, normalize=False) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    layers = []
    if normalize:
        layers.append(Normalize(torch.rand(d, generator=g), 0.5 + torch.rand(d, generator=g)))
    sizes = [d] + list(widths)
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], classes))
    return _init(nn.Sequential(*layers), g, dtype)


def cnn(seed: int, channels=3, size=8, classes=5, dtype=torch.float64, normalize=False) -> nn.Sequential:
    """A scaled-down Wong & Kolter CNN: two 4×4 stride-2 convs (padding 1), FC, FC."""
    g = torch.Generator().manual_seed(seed)
    layers = [Normalize(torch.rand(channels, generator=g), 0.5 + torch.rand(channels, generator=g))] if normalize else []
    s = size // 4
    layers += [nn.Conv2d(channels, 4, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 4, stride=2, padding=1),
               nn.ReLU(), nn.Flatten(), nn.Linear(6 * s * s, 12), nn.ReLU(), nn.Linear(12, classes)]
    return _init(nn.Sequential(*layers), g, dtype)


def resnet(seed: int, width=0.125, size=16, classes=10, dtype=torch.float64, normalize=False) -> nn.Sequential:
    """The toolkit's Wong et al. ResNet at reduced width."""
    data = SimpleNamespace(input_shape=(3, size, size), num_classes=classes, name="test",
                           mean=(0.5, 0.4, 0.3) if normalize else None, std=(0.25, 0.2, 0.3))
    model = build_model("resnet", data, seed=seed, width=width)
    g = torch.Generator().manual_seed(seed)
    # non-zero biases, so the bias terms of the bounds are exercised too
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.to(dtype)


def _init(model, g, dtype):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.to(dtype)


def relu_inputs(model: nn.Module, x: torch.Tensor) -> list:
    """The input of every ReLU call during model(x), in forward order."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def margins(model, x, y) -> torch.Tensor:
    """f_y(x) − f_j(x) for every class j → [B, C]."""
    logits = model(x)
    return logits.gather(1, y.unsqueeze(1)) - logits


def pgd_margins(model, x, y, threat, steps=20, generator=None) -> torch.Tensor:
    """Smallest margins found by a plain PGD on min_j (f_y − f_j) from a random start."""
    delta = threat.sample(x.shape, generator=generator, dtype=x.dtype)
    best = margins(model, x + delta, y).detach()
    step = 2.5 * threat.eps / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        m = margins(model, x + delta, y)
        others = m.scatter(1, y.unsqueeze(1), float("inf"))
        grad, = torch.autograd.grad(others.min(1).values.sum(), delta)
        with torch.no_grad():
            delta = threat.project(delta - step * threat.ascent(grad))
            best = torch.minimum(best, margins(model, x + delta, y))
    return best


def assert_patches_equal_dense(model, x, threat, method, monkeypatch, atol=1e-12):
    """The per-neuron passes give the same bounds in patches as dense (and patches are used)."""
    from realdata.bounds import preactivation_bounds
    from realdata.relaxation import patches
    from realdata.relaxation.graph import parse

    graph = parse(model, x)
    assert any(patches.applicable(graph.prefix(k), threat, x) for k in range(1, graph.num_relus))
    options = {"direction": "backward"} if method == "coap" else {}
    patched = preactivation_bounds(model, x, threat, method, **options)
    monkeypatch.setattr(patches, "applicable", lambda chain, threat, x: False)
    dense = preactivation_bounds(model, x, threat, method, **options)
    for (a, b), (c, d) in zip(patched, dense):
        assert torch.allclose(a, c, atol=atol) and torch.allclose(b, d, atol=atol)
