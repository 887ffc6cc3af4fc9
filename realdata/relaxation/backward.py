"""Backward linear bound propagation: bound Λᵀ·g(x') over x' ∈ x + S for the
function g computed by a chain of nodes (the whole model, or the prefix that
ends at one ReLU's input).

Coefficients Λ ([b, m, *shape], b = 1 while they do not depend on the example)
travel from the output to the input, each node doing its own step (`layers.py`):
transposed through affine layers (adding ⟨Λ, bias⟩), through each ReLU's
relaxation (adding its intercepts), and split and summed at residual blocks.  At
the input the bound is concretised with the threat's conjugate: Λᵀx ∓ σ_S(∓Λ).
Every threat in the toolkit is symmetric (S = −S), so one support evaluation
serves both sides.
"""
from __future__ import annotations

import math

import torch

from realdata.relaxation.layers import Chain
from realdata.relaxation.relus import Spec


class Totals:
    """Constants accumulated along one propagation, each [b, m] (or 0)."""

    def __init__(self, two_sided: bool):
        self.lo = 0
        self.hi = 0 if two_sided else None

    def add(self, lo, hi=None):
        """Add a lower-side constant and its upper-side twin (the same one when hi is None)."""
        if lo is None:
            return
        self.lo = self.lo + lo
        if self.hi is not None:
            self.hi = self.hi + (lo if hi is None else hi)


class Propagation:
    """What the nodes of one backward propagation share: the relaxations, the constants and
    the specification block being propagated."""

    def __init__(self, relaxations, two_sided: bool, spec: Spec | None = None):
        self.relaxations = relaxations
        self.totals = Totals(two_sided)
        self.spec = spec


def row_support(chain: Chain, lam: torch.Tensor, threat) -> torch.Tensor:
    """σ_S of each row of Λ pulled back through a ReLU-free chain → [b, m]."""
    lam_in = chain.backward(lam, Propagation([], False))
    b, m = lam_in.shape[:2]
    return threat.support(lam_in.reshape((b * m,) + tuple(lam_in.shape[2:]))).reshape(b, m)


def _support(lam_in: torch.Tensor, threat) -> torch.Tensor:
    """σ_S of each row of input coefficients [b, m, *input] → [b, m]."""
    b, m = lam_in.shape[:2]
    return threat.support(lam_in.reshape((b * m,) + tuple(lam_in.shape[2:]))).reshape(b, m)


def input_terms(lam_in: torch.Tensor, x: torch.Tensor, threat):
    """(Λᵀx, σ_S(Λ)) for input coefficients [b, m, *input] → two [B or b, m] tensors."""
    center = (lam_in.flatten(2) @ x.flatten(1).unsqueeze(-1).to(lam_in.dtype)).squeeze(-1)
    return center, _support(lam_in, threat)


def _narrowing_head(chain: Chain, x: torch.Tensor):
    """(head, rest): the chain's leading affine layers when their output is narrower than the
    input (an MLP's first layer), else an empty head."""
    n = 0
    while n < len(chain.nodes) and chain.nodes[n].is_affine:
        n += 1
    if n == 0 or math.prod(chain.nodes[n - 1].out_shape) >= x[0].numel():
        return Chain([]), chain
    return Chain(chain.nodes[:n]), Chain(chain.nodes[n:])


def _head_output(head: Chain, x: torch.Tensor, known) -> torch.Tensor:
    """head.forward(x), or `known`'s output when it is that of the very same nodes."""
    if known is not None and len(known[0]) == len(head.nodes) and all(a is b for a, b in zip(known[0], head.nodes)):
        return known[1]
    return head.forward(x)


def linear_bounds(chain: Chain, lam: torch.Tensor, x: torch.Tensor, threat, relaxations, two_sided: bool,
                  spec: Spec | None = None, known=None):
    """Lower (and, when `two_sided`, upper) bounds of Λᵀ·chain(x') → [B, m] each.

    `two_sided` needs every relaxation met on the way to be two-sided; otherwise
    callers pass [Λ; −Λ] and negate the second half.  `known` = (nodes, output): the
    output at x of leading nodes of the chain the caller has computed already (the
    engine's first-layer centre), used instead of a second forward pass and its gradient.
    """
    run = Propagation(relaxations, two_sided, spec)
    head, rest = _narrowing_head(chain, x)
    lam_mid = rest.backward(lam, run)
    if head.nodes:
        # ⟨Λ_in, x⟩ = ⟨Λ_mid, A·x⟩ for the head's linear map A: the product with the (narrower)
        # head output spares a pass over the input-sized coefficients, forward and backward
        spread = threat.pulled_support(lam_mid, head.linear)
        if spread is None:
            spread = _support(head.backward(lam_mid, run), threat)  # adds the head's biases to the totals
            ax = head.linear(x.unsqueeze(0).to(lam.dtype))[0]
        else:
            # the threat needs no Λ_in: the head's biases ride in its output, ⟨Λ_mid, A·x + c⟩
            ax = _head_output(head, x, known).to(lam.dtype)
        center = (lam_mid.flatten(2) @ ax.flatten(1).unsqueeze(-1)).squeeze(-1)
    else:
        center, spread = input_terms(head.backward(lam_mid, run), x, threat)
    lower = (center + run.totals.lo - spread).expand(x.shape[0], -1)
    if not two_sided:
        return lower, None
    upper = (center + run.totals.hi + spread).expand(x.shape[0], -1)
    return lower, upper
