"""Model builders.  Every model is a plain nn.Sequential the bounds engine understands."""
from __future__ import annotations

import torch
from torch import nn


def one_neuron(theta: torch.Tensor, a: float, b: float) -> nn.Sequential:
    """The theorem's model f(x) = a·ReLU(θᵀx) + b as a two-logit network.

    Logits are (−f/2, f/2), so logit₁ − logit₀ = f(x): class index 1 is y = +1 and
    class index 0 is y = −1, and every multi-class margin bound of the engine is a
    bound on y·f(x).  Only the first layer's weight (θ) is meant to be trained.
    """
    theta = torch.as_tensor(theta).flatten()
    first = nn.Linear(theta.numel(), 1, bias=False)
    last = nn.Linear(1, 2)
    with torch.no_grad():
        first.weight.copy_(theta.reshape(1, -1))
        last.weight.copy_(torch.tensor([[-a / 2.0], [a / 2.0]]))
        last.bias.copy_(torch.tensor([-b / 2.0, b / 2.0]))
    last.requires_grad_(False)
    return nn.Sequential(first, nn.ReLU(), last).to(theta.dtype)


def labels_to_sign(y: torch.Tensor) -> torch.Tensor:
    """Class index {0, 1} → the theorem's label {−1, +1}."""
    return 2 * y - 1
