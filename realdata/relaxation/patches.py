"""Backward propagation in patches: the per-neuron pass for a ReLU layer whose input is a
feature map, with each neuron's coefficients kept on its receptive field only.

A neuron of a conv output sees a K×K window of each earlier feature map (K grows
by (K−1)·s + k per conv or pooling layer).  The dense backward pass pulls one
full-size image per neuron through every transposed conv; here each neuron carries
a [channels, K, K] patch, so the work per neuron is the window, not the image (the
"patches mode" of auto_LiRPA).  Windows are placed by a composite stride S and
padding P: neuron (i, j) of the top map sees rows i·S − P … i·S − P + K − 1.  Entries
that fall on padding are zeroed by unfolding the ReLU slopes (and the input mask)
with zero padding, so the result equals the dense pass.

Each layer says whether it keeps a map's layout and owns its patch step
(`layers.py`: conv, average pooling, per-channel affine maps, identities, ReLUs,
residual blocks); each threat says whether it has a support for patches
(`Threat.supports_patches`).  Other prefixes use the dense pass, as do neurons
whose window is not smaller than the image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from realdata.relaxation.backward import Propagation
from realdata.relaxation.layers import Chain


def applicable(chain: Chain, threat, x) -> bool:
    """Can (and should) the neurons at the end of `chain` be bounded in patches?"""
    if not chain.nodes or not threat.supports_patches or x.dim() != 4 or len(chain.nodes[-1].out_shape) != 3:
        return False
    # patches pay off while a neuron's window is smaller than the image
    return chain.patchable() and patch_size(chain, x) < x[0].numel()


class Window:
    """Composite geometry (kernel K, stride S, padding P) of the top map's neurons on a lower map:
    neuron (i, j) sees rows i·S − P … i·S − P + K − 1 (and likewise columns)."""

    def __init__(self, K=(1, 1), S=(1, 1), P=(0, 0)):
        self.K, self.S, self.P = tuple(K), tuple(S), tuple(P)

    def through(self, kernel, stride, padding) -> "Window":
        """The window on a layer's input map, given the window on its output map."""
        return Window([(K - 1) * si + ki for K, si, ki in zip(self.K, stride, kernel)],
                      [S * si for S, si in zip(self.S, stride)],
                      [P * si + pi for P, si, pi in zip(self.P, stride, padding)])

    def union(self, other: "Window") -> "Window":
        """The smallest window containing both (same stride: the branches of a block)."""
        P = [max(a, b) for a, b in zip(self.P, other.P)]
        end = [max(ka - pa, kb - pb) for ka, pa, kb, pb in zip(self.K, self.P, other.K, other.P)]
        return Window([p + e for p, e in zip(P, end)], self.S, P)

    def pad_into(self, values: torch.Tensor, target: "Window") -> torch.Tensor:
        """Zero-pad patches of this window to the larger `target` window."""
        (lh, lw) = (tp - p for tp, p in zip(target.P, self.P))
        (rh, rw) = ((tk - tp) - (k - p) for tk, tp, k, p in zip(target.K, target.P, self.K, self.P))
        return F.pad(values, (lw, rw, lh, rh))


def patch_cost(chain: Chain) -> int:
    """Multiply-adds of one neuron's patch through the chain's transposed convs."""
    return chain.patch_macs(Window())[0]


def patch_size(chain: Chain, x) -> int:
    """Elements of one neuron's patch at the input."""
    K = chain.window(Window()).K
    return x.shape[1] * K[0] * K[1]


class Patches:
    """Coefficients [b, m, C, K, K] of m neurons of the top map on a lower map, and their window."""

    def __init__(self, values, window: Window, pos_i, pos_j):
        self.values, self.window, self.pos_i, self.pos_j = values, window, pos_i, pos_j

    def like(self, values, window):
        return Patches(values, window, self.pos_i, self.pos_j)

    def grab(self, t: torch.Tensor) -> torch.Tensor:
        """Each neuron's window of the map t [B, C, H, W] → [B, m, C, K, K] (zero outside the map)."""
        w = self.window
        u = F.unfold(t, w.K, padding=w.P, stride=w.S)  # [B, C·K·K, L]
        cols = (t.shape[-1] + 2 * w.P[1] - w.K[1]) // w.S[1] + 1
        pos = self.pos_i * cols + self.pos_j
        # one window per position (L of them), then whole rows copied per neuron: ~10x faster
        # than gathering the neurons' columns of u (the CNN's CROWN pass grabs thousands)
        rows = u.transpose(1, 2).contiguous().index_select(1, pos)
        return rows.reshape((t.shape[0], len(pos), t.shape[1]) + w.K)


def patch_bounds(chain: Chain, rows: torch.Tensor, x: torch.Tensor, threat, relaxations, two_sided: bool,
                 sign: float = 1.0, spec=None):
    """Bounds of sign·z for the neurons `rows` ([n] flat indices into the top map) — the
    same numbers as `backward.linear_bounds` with a ±identity specification."""
    C, H, W = chain.nodes[-1].out_shape
    n = len(rows)
    values = torch.zeros((1, n, C, 1, 1), dtype=x.dtype, device=x.device)
    values[0, torch.arange(n, device=x.device), rows // (H * W), 0, 0] = sign
    run = Propagation(relaxations, two_sided, spec)
    patch = chain.pull(Patches(values, Window(), (rows % (H * W)) // W, rows % W), run)
    centre = (patch.values * patch.grab(x)).flatten(2).sum(-1)
    # the rows are zero on the image's padding: mask it before asking the threat
    inside = patch.grab(torch.ones((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device))
    spread = threat.patch_support(patch.values * inside, patch.grab)
    lower = (centre + run.totals.lo - spread).expand(x.shape[0], -1)
    upper = (centre + run.totals.hi + spread).expand(x.shape[0], -1) if two_sided else None
    return lower, upper
