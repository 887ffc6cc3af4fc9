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

Applies to prefixes made of Conv2d, ReLU, residual blocks of those and a leading
Normalize (the conv stem of a CNN or ResNet) under the ℓ∞, ℓ2 and Directions
threats, while a neuron's window is smaller than the image; other prefixes use
the dense pass.  The two branches of a residual block give windows of the same
stride but different extents; their union holds both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realdata.layers import Normalize
from realdata.relaxation.backward import Totals
from realdata.relaxation.graph import Block, Chain, Leaf, Relu
from realdata.relaxation.relu import relax_backward
from realdata.threats import L2, Directions, Linf


def _convertible(chain: Chain, top: bool) -> bool:
    for node in chain.nodes:
        if isinstance(node, Relu):
            continue
        if isinstance(node, Block):
            if not (_convertible(node.main, False) and _convertible(node.skip, False)):
                return False
            continue
        m = node.module
        if isinstance(m, nn.Conv2d):
            if m.dilation != (1, 1):
                return False
        elif not (isinstance(m, nn.Identity) or (top and isinstance(m, Normalize))):
            return False
    return True


def applicable(chain: Chain, threat, x) -> bool:
    """Can (and should) the neurons at the end of `chain` be bounded in patches?"""
    nodes = chain.nodes
    if not nodes or not isinstance(threat, (Linf, L2, Directions)) or x.dim() != 4:
        return False
    last = nodes[-1]
    if not (isinstance(last, Block) or (isinstance(last, Leaf) and isinstance(last.module, nn.Conv2d))):
        return False
    # patches pay off while a neuron's window is smaller than the image
    return _convertible(chain, True) and patch_size(chain, x) < x[0].numel()


class _Window:
    """Composite geometry (kernel K, stride S, padding P) of the top map's neurons on a lower map:
    neuron (i, j) sees rows i·S − P … i·S − P + K − 1 (and likewise columns)."""

    def __init__(self, K=(1, 1), S=(1, 1), P=(0, 0)):
        self.K, self.S, self.P = tuple(K), tuple(S), tuple(P)

    def through(self, conv: nn.Conv2d) -> "_Window":
        """The window on a conv's input map, given the window on its output map."""
        k, s, p = conv.kernel_size, conv.stride, conv.padding
        return _Window([(K - 1) * si + ki for K, si, ki in zip(self.K, s, k)],
                       [S * si for S, si in zip(self.S, s)],
                       [P * si + pi for P, si, pi in zip(self.P, s, p)])

    def union(self, other: "_Window") -> "_Window":
        """The smallest window containing both (same stride: the branches of a block)."""
        P = [max(a, b) for a, b in zip(self.P, other.P)]
        end = [max(ka - pa, kb - pb) for ka, pa, kb, pb in zip(self.K, self.P, other.K, other.P)]
        return _Window([p + e for p, e in zip(P, end)], self.S, P)

    def pad_into(self, values: torch.Tensor, target: "_Window") -> torch.Tensor:
        """Zero-pad patches of this window to the larger `target` window."""
        (lh, lw) = (tp - p for tp, p in zip(target.P, self.P))
        (rh, rw) = ((tk - tp) - (k - p) for tk, tp, k, p in zip(target.K, target.P, self.K, self.P))
        return F.pad(values, (lw, rw, lh, rh))


def _window(chain: Chain, window: _Window) -> _Window:
    for node in reversed(chain.nodes):
        if isinstance(node, Block):
            window = _window(node.main, window).union(_window(node.skip, window))
        elif isinstance(node, Leaf) and isinstance(node.module, nn.Conv2d):
            window = window.through(node.module)
    return window


def patch_cost(chain: Chain) -> int:
    """Multiply-adds of one neuron's patch through the chain's transposed convs."""
    total = 0

    def walk(chain, window):
        nonlocal total
        for node in reversed(chain.nodes):
            if isinstance(node, Block):
                window = walk(node.main, window).union(walk(node.skip, window))
            elif isinstance(node, Leaf) and isinstance(node.module, nn.Conv2d):
                m = node.module
                total += m.out_channels * window.K[0] * window.K[1] * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                window = window.through(m)
        return window

    walk(chain, _Window())
    return total


def patch_size(chain: Chain, x) -> int:
    """Elements of one neuron's patch at the input."""
    K = _window(chain, _Window()).K
    return x.shape[1] * K[0] * K[1]


class _Patches:
    """Coefficients [b, m, C, K, K] of m neurons of the top map on a lower map, and their window."""

    def __init__(self, values, window: _Window, pos_i, pos_j):
        self.values, self.window, self.pos_i, self.pos_j = values, window, pos_i, pos_j

    def like(self, values, window):
        return _Patches(values, window, self.pos_i, self.pos_j)

    def grab(self, t: torch.Tensor) -> torch.Tensor:
        """Each neuron's window of the map t [B, C, H, W] → [B, m, C, K, K] (zero outside the map)."""
        w = self.window
        u = F.unfold(t, w.K, padding=w.P, stride=w.S)  # [B, C·K·K, L]
        cols = (t.shape[-1] + 2 * w.P[1] - w.K[1]) // w.S[1] + 1
        pos = self.pos_i * cols + self.pos_j
        return u[:, :, pos].transpose(1, 2).reshape((t.shape[0], len(pos), t.shape[1]) + w.K)


def _pull(chain: Chain, patch: _Patches, relaxations, totals: Totals) -> _Patches:
    parallel = totals.hi is not None
    for node in reversed(chain.nodes):
        if isinstance(node, Relu):
            relax = relaxations[node.index]
            d, alpha, w = patch.grab(relax.d), patch.grab(relax.alpha), patch.grab(relax.intercept)
            values, lo, hi = relax_backward(patch.values, d, alpha, lambda t: (t * w).flatten(2).sum(-1), parallel)
            totals.add(lo, hi)
            patch = patch.like(values, patch.window)
        elif isinstance(node, Block):
            main = _pull(node.main, patch, relaxations, totals)
            skip = _pull(node.skip, patch, relaxations, totals)
            window = main.window.union(skip.window)
            patch = patch.like(main.window.pad_into(main.values, window) + skip.window.pad_into(skip.values, window),
                               window)
        elif isinstance(node.module, nn.Conv2d):
            m, values = node.module, patch.values
            if m.bias is not None:
                totals.add((values.sum((-1, -2)) * m.bias.to(values.dtype)).sum(-1))
            b, n = values.shape[:2]
            values = F.conv_transpose2d(values.reshape((b * n,) + values.shape[2:]), m.weight, None, m.stride)
            patch = patch.like(values.reshape((b, n) + values.shape[1:]), patch.window.through(m))
        elif isinstance(node.module, Normalize):  # (x − mean)/std, constants only inside the image
            m, values = node.module, patch.values
            inside = patch.grab(torch.ones((1,) + node.in_shape, dtype=values.dtype, device=values.device))
            shift = (-m.mean.to(values.dtype) / m.std.to(values.dtype)).reshape(-1, 1, 1)
            totals.add((values * inside * shift).flatten(2).sum(-1))
            patch = patch.like(values / m.std.to(values.dtype).reshape(-1, 1, 1), patch.window)
    return patch


def patch_bounds(chain: Chain, rows: torch.Tensor, x: torch.Tensor, threat, relaxations, parallel: bool,
                 sign: float = 1.0):
    """Bounds of sign·z for the neurons `rows` ([n] flat indices into the top map) — the
    same numbers as `backward.linear_bounds` with a ±identity specification."""
    last = chain.nodes[-1]
    C, H, W = last.out_shape
    n = len(rows)
    values = torch.zeros((1, n, C, 1, 1), dtype=x.dtype, device=x.device)
    values[0, torch.arange(n, device=x.device), rows // (H * W), 0, 0] = sign
    totals = Totals(parallel)
    patch = _pull(chain, _Patches(values, _Window(), (rows % (H * W)) // W, rows % W), relaxations, totals)
    centre, spread = _input_terms(patch, x, threat)
    lower = (centre + totals.lo - spread).expand(x.shape[0], -1)
    upper = (centre + totals.hi + spread).expand(x.shape[0], -1) if parallel else None
    return lower, upper


def _input_terms(patch: _Patches, x, threat):
    """(⟨Λ, x⟩, σ_S(Λ)) for patches over the input image."""
    values = patch.values
    centre = (values * patch.grab(x)).flatten(2).sum(-1)
    masked = values * patch.grab(torch.ones((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device))
    if isinstance(threat, Linf):
        spread = threat.eps * masked.abs().flatten(2).sum(-1)
    elif isinstance(threat, L2):
        spread = threat.eps * masked.flatten(2).norm(dim=-1)
    else:
        dirs = threat.directions.to(dtype=x.dtype, device=x.device)
        coords = torch.stack([(masked * patch.grab(dj.unsqueeze(0))).flatten(2).sum(-1) for dj in dirs])
        spread = threat.eps * coords.abs().amax(0)
    return centre, spread
