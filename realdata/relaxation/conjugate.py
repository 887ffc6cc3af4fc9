"""The input conjugate: σ_S(ν) = max_{δ∈S} ⟨ν, δ⟩ of the threat set, for many ν at once.

`Threat.support` is the definition and the fallback everywhere.  For the three
threats of the toolkit the same numbers come cheaper when ν is only known through
a linear map (every function here is exact, not an estimate):

* rows of a single affine layer (composed with diagonal ones: Normalize,
  Flatten): ε‖row‖₁ = ε·|W|·1 and ε‖row‖₂ = ε·sqrt(W²·1), one pass of the layer on
  a constant image instead of one per neuron; for `Directions`, ε·max_j |W δ_j|;
* rows held as columns of the input basis (forward mode): norms along the column
  axis, no transpose;
* the box around the set (IBP's start): ε per coordinate for ℓ∞ and ℓ2.
"""
from __future__ import annotations

import torch
from torch import nn

from realdata.relaxation.graph import Chain, Leaf
from realdata.threats import L2, Directions, Linf


def _diagonal(leaf: Leaf) -> bool:
    return not isinstance(leaf.module, (nn.Linear, nn.Conv2d))


def prefix_support(chain: Chain, threat, x: torch.Tensor):
    """σ_S of every row of a ReLU-free chain of leaves → [1, *out_shape], or None when no
    shortcut applies (more than one non-diagonal layer, or another threat)."""
    if sum(not _diagonal(leaf) for leaf in chain.nodes) > 1 or not chain.nodes:
        return None
    like = dict(dtype=x.dtype, device=x.device)
    if isinstance(threat, Directions):
        cols = threat.directions.to(**like).unsqueeze(0)
        for leaf in chain.nodes:
            cols = leaf.linear(cols)
        return threat.eps * cols.abs().amax(1)
    if not isinstance(threat, (Linf, L2)):
        return None
    power = 1 if isinstance(threat, Linf) else 2
    t = torch.ones((1,) + tuple(x.shape[1:]), **like)
    for leaf in chain.nodes:
        t = _power_map(leaf, t, power)
    return threat.eps * (t if power == 1 else t.clamp(min=0).sqrt())


def _power_map(leaf: Leaf, t: torch.Tensor, power: int) -> torch.Tensor:
    """Σ_i |a_ki|^p · t_i for the leaf's matrix A (t ≥ 0) — ‖row_k‖_p^p when t = 1."""
    m = leaf.module
    if isinstance(m, nn.Linear):
        return t @ (m.weight.abs() ** power).T
    if isinstance(m, nn.Conv2d):
        return torch.nn.functional.conv2d(t, m.weight.abs() ** power, None, m.stride, m.padding, m.dilation)
    if power == 1:
        return leaf.abs_linear(t)
    return leaf.abs_linear(leaf.abs_linear(t))  # a diagonal map squared is applied twice


def column_support(threat, cols: torch.Tensor, in_shape: tuple) -> torch.Tensor:
    """σ_S of the rows stored as columns over the identity basis: [b, n_in, m] → [b, m]."""
    if isinstance(threat, Linf):
        return threat.eps * cols.abs().sum(1)
    if isinstance(threat, L2):
        return threat.eps * cols.norm(dim=1)
    b, _, m = cols.shape
    return threat.support(cols.transpose(1, 2).reshape((b * m,) + tuple(in_shape))).reshape(b, m)


_ROWS = 1024  # identity rows per support evaluation in the generic box


def box_radius(threat, x: torch.Tensor) -> torch.Tensor:
    """Half-widths of the smallest box around the threat set, σ_S(e_i) → shaped like one input."""
    like = dict(dtype=x.dtype, device=x.device)
    if isinstance(threat, (Linf, L2)):
        return torch.full(tuple(x.shape[1:]), float(threat.eps), **like)
    if isinstance(threat, Directions):
        return threat.eps * threat.directions.to(**like).abs().amax(0)
    n = x[0].numel()
    parts = []
    for start in range(0, n, _ROWS):
        rows = torch.arange(start, min(n, start + _ROWS), device=x.device)
        eye = torch.zeros(len(rows), n, **like)
        eye[torch.arange(len(rows), device=x.device), rows] = 1
        parts.append(threat.support(eye.reshape((len(rows),) + tuple(x.shape[1:]))))
    return torch.cat(parts).reshape(x.shape[1:])
