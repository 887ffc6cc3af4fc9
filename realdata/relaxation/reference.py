"""The same network in convex_adversarial's layout, for cross-checks against the COAP authors' code.

convex_adversarial (Wong & Kolter, PyPI 0.4.4, an optional test dependency) writes
a residual block as `Dense` layers of a `DenseSequential`: Dense(W0, None, W2)
sums W0 on the block's input and W2 on the output of the inner ReLU.
"""
from __future__ import annotations

from torch import nn

from realdata.layers import Residual


def to_convex_adversarial(model: nn.Sequential):
    """`model` (Linear, Conv2d, ReLU, Flatten and Residual blocks) as a DenseSequential
    sharing its parameters.  Normalize has no counterpart there; fold it first."""
    from convex_adversarial.utils import Dense, DenseSequential

    layers = []
    for m in model:
        if isinstance(m, Residual):
            conv_a, relu, conv_b = m.main
            skip = nn.Sequential() if isinstance(m.skip, nn.Identity) else m.skip
            layers += [Dense(conv_a), relu, Dense(skip, None, conv_b)]
        else:
            layers.append(m)
    return DenseSequential(*layers)
