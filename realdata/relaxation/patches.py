"""Backward propagation in patches: the per-neuron pass for a ReLU layer that follows a
convolution, with each neuron's coefficients kept on its receptive field only.

A neuron of a conv output sees a K×K window of each earlier feature map (K grows
by (K−1)·s + k per conv).  The dense backward pass pulls one full-size image per
neuron through every transposed conv; here each neuron carries a
[channels, K, K] patch, so the work per neuron is the window, not the image (the
"patches mode" of auto_LiRPA).  Windows are placed by a composite stride S and
padding P: neuron (i, j) of the top map sees rows i·S − P … i·S − P + K − 1.  Entries
that fall on padding are zeroed by unfolding the ReLU slopes (and the input mask)
with zero padding, so the result equals the dense pass.

Applies to prefixes made of Conv2d, ReLU and a leading Normalize (the conv stem of
a CNN) under the ℓ∞, ℓ2 and Directions threats; other prefixes use the dense pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realdata.layers import Normalize
from realdata.relaxation.graph import Chain, Leaf, Relu
from realdata.relaxation.relu import relax_backward
from realdata.threats import L2, Directions, Linf


def applicable(chain: Chain, threat) -> bool:
    nodes = chain.nodes
    if not nodes or not isinstance(threat, (Linf, L2, Directions)):
        return False
    last = nodes[-1]
    if not (isinstance(last, Leaf) and isinstance(last.module, nn.Conv2d)):
        return False
    for node in nodes:
        if isinstance(node, Relu):
            continue
        if not isinstance(node, Leaf) or not isinstance(node.module, (nn.Conv2d, Normalize)):
            return False
        if isinstance(node.module, nn.Conv2d) and node.module.dilation != (1, 1):
            return False
    return True


class _Window:
    """Composite geometry (kernel K, stride S, padding P) of the top map's neurons on a lower map."""

    def __init__(self):
        self.K, self.S, self.P = (1, 1), (1, 1), (0, 0)

    def through(self, conv: nn.Conv2d):
        """Move the window from a conv's output map to its input map."""
        k, s, p = conv.kernel_size, conv.stride, conv.padding
        self.K = tuple((K - 1) * si + ki for K, si, ki in zip(self.K, s, k))
        self.P = tuple(P * si + pi for P, si, pi in zip(self.P, s, p))
        self.S = tuple(S * si for S, si in zip(self.S, s))


def patch_size(chain: Chain, x) -> int:
    """Elements of one neuron's patch at the input (the largest along the way)."""
    window = _Window()
    for node in reversed(chain.nodes):
        if isinstance(node, Leaf) and isinstance(node.module, nn.Conv2d):
            window.through(node.module)
    return x.shape[1] * window.K[0] * window.K[1]


def patch_bounds(chain: Chain, rows: torch.Tensor, x: torch.Tensor, threat, relaxations, parallel: bool,
                 sign: float = 1.0):
    """Bounds of sign·z for the neurons `rows` ([n] flat indices into the top conv's output) —
    the same numbers as `backward.linear_bounds` with a ±identity specification."""
    top = chain.nodes[-1]
    C, H, W = top.out_shape
    channel = rows // (H * W)
    pos_i, pos_j = (rows % (H * W)) // W, rows % W
    n = len(rows)
    values = torch.zeros((1, n, C, 1, 1), dtype=x.dtype, device=x.device)
    values[0, torch.arange(n, device=x.device), channel, 0, 0] = sign
    lo = hi = 0
    window = _Window()
    positions = None
    for node in reversed(chain.nodes):
        if isinstance(node, Relu):
            relax = relaxations[node.index]
            grab = lambda t: window_of(t, window, positions)  # noqa: E731
            d, alpha, w = grab(relax.d), grab(relax.alpha), grab(relax.intercept)
            values, l, h = relax_backward(values, d, alpha, lambda t: (t * w).flatten(2).sum(-1), parallel)
            lo, hi = lo + l, (hi + h if parallel else None)
            continue
        m = node.module
        if isinstance(m, nn.Conv2d):
            if m.bias is not None:
                b = (values.sum((-1, -2)) * m.bias.to(values.dtype)).sum(-1)
                lo, hi = lo + b, (hi + b if parallel else None)
            b_, n_ = values.shape[:2]
            values = F.conv_transpose2d(values.reshape((b_ * n_,) + values.shape[2:]), m.weight, None, m.stride)
            values = values.reshape((b_, n_) + values.shape[1:])
            window.through(m)
            positions = _positions(window, node.in_shape, pos_i, pos_j)
        else:  # the leading Normalize: (x − mean)/std, constants only inside the image
            std = m.std.to(values.dtype).reshape(-1, 1, 1)
            inside = window_of(torch.ones((1,) + node.in_shape, dtype=values.dtype, device=values.device), window, positions)
            shift = (-m.mean.to(values.dtype) / m.std.to(values.dtype)).reshape(-1, 1, 1)
            b = (values * inside * shift).flatten(2).sum(-1)
            lo, hi = lo + b, (hi + b if parallel else None)
            values = values / std
    centre, spread = _input_terms(values, x, threat, window, positions)
    lower = (centre + lo - spread).expand(x.shape[0], -1)
    upper = (centre + hi + spread).expand(x.shape[0], -1) if parallel else None
    return lower, upper


def _positions(window: _Window, in_shape, pos_i, pos_j):
    """Column index of each neuron's window in F.unfold's output over a map of in_shape."""
    width = in_shape[2]
    cols = (width + 2 * window.P[1] - window.K[1]) // window.S[1] + 1
    return pos_i * cols + pos_j


def window_of(t: torch.Tensor, window: _Window, positions) -> torch.Tensor:
    """Each neuron's window of the map t [B, C, H, W] → [B, m, C, K, K] (zero outside the map)."""
    u = F.unfold(t, window.K, padding=window.P, stride=window.S)  # [B, C·K·K, L]
    return u[:, :, positions].transpose(1, 2).reshape((t.shape[0], len(positions), t.shape[1]) + window.K)


def _input_terms(values, x, threat, window, positions):
    """(⟨Λ, x⟩, σ_S(Λ)) for patches over the input image."""
    centre = (values * window_of(x, window, positions)).flatten(2).sum(-1)
    inside = window_of(torch.ones((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device), window, positions)
    masked = values * inside
    if isinstance(threat, Linf):
        spread = threat.eps * masked.abs().flatten(2).sum(-1)
    elif isinstance(threat, L2):
        spread = threat.eps * masked.flatten(2).norm(dim=-1)
    else:
        dirs = threat.directions.to(dtype=x.dtype, device=x.device)
        coords = torch.stack([(masked * window_of(dj.unsqueeze(0), window, positions)).flatten(2).sum(-1)
                              for dj in dirs])
        spread = threat.eps * coords.abs().amax(0)
    return centre, spread
