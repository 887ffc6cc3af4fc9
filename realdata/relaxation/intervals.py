"""Interval bound propagation (IBP) through the engine's graph.

Boxes travel as (centre, radius).  The input box is the threat's bounding box
(radius_i = σ_S(e_i)), but the first ReLU layer gets the exact range of its
affine prefix from the caller, as every method shares it.  The output is bounded
with the specification folded into the trailing affine layers (Gowal et al.;
Zhang et al.'s CROWN-IBP does the same), which is never looser than subtracting
logit intervals.
"""
from __future__ import annotations

import torch

from realdata.relaxation.backward import linear_bounds
from realdata.relaxation.graph import Graph
from realdata.relaxation.layers import Chain


def tail_start(root: Chain) -> int:
    """Index of the first node of the trailing run of affine layers."""
    t = len(root.nodes)
    while t > 0 and root.nodes[t - 1].is_affine:
        t -= 1
    return t


class IntervalPass:
    """Runs IBP once; holds the bounds of every ReLU and the box where the tail starts."""

    def __init__(self, graph: Graph, x: torch.Tensor, threat, first_bounds):
        self.graph = graph
        self.x = x
        self.threat = threat
        self.first_bounds = first_bounds
        self.bounds = [None] * graph.num_relus
        self.cut = tail_start(graph.root)
        radius = threat.box_radius(x).expand_as(x)
        self.box = Chain(graph.root.nodes[:self.cut]).interval(x, radius, self)

    def relu_bounds(self, relu, lo, up):
        """Record (and return) the bounds of a ReLU's input; the first layer's are exact."""
        if relu.index == 0:
            lo, up = self.first_bounds
        self.bounds[relu.index] = (lo, up)
        return lo, up

    def output_lower(self, spec: torch.Tensor) -> torch.Tensor:
        """Lower bounds of specᵀ·model(x') ([B, m, *out] → [B, m])."""
        tail = Chain(self.graph.root.nodes[self.cut:])
        if self.cut == 0:  # an affine model: its range is exact
            return linear_bounds(tail, spec, self.x, self.threat, [], two_sided=False)[0]
        lam, const = spec, 0
        for layer in reversed(tail.nodes):
            b = layer.bias_term(lam)
            const = const if b is None else const + b
            lam = layer.transpose(lam)
        c, r = self.box
        centre = (lam.flatten(2) @ c.flatten(1).unsqueeze(-1)).squeeze(-1)
        spread = (lam.abs().flatten(2) @ r.flatten(1).unsqueeze(-1)).squeeze(-1)
        return centre - spread + const
