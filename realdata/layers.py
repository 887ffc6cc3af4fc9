"""Layers that models use and the bounds engine understands, beyond torch.nn's own.

Every model in the toolkit is a plain `nn.Sequential` of layers the bounds engine
understands (`realdata.relaxation.graph.LAYERS`), so each bound method applies to each model.
"""
from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """(x − mean) / std per channel, as the first layer of a model.

    Keeping normalisation inside the model means ε is always stated in input
    (pixel) space; the bounds engine folds this affine map into the first
    linear layer, which keeps ℓ2 bounds sound (a per-channel rescaling changes
    the ℓ2 ball, so it must not be applied to ε separately).
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if (std <= 0).any():
            raise ValueError("Normalize needs positive standard deviations.")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def _shape(self, x: torch.Tensor):
        # channel axis is 1 for images [B, C, H, W]; vectors [B, d] use one value per feature
        return (1, -1) + (1,) * (x.dim() - 2)

    def forward(self, x):
        shape = self._shape(x)
        return (x - self.mean.reshape(shape)) / self.std.reshape(shape)

    def extra_repr(self):
        return f"channels={self.mean.numel()}"


class Residual(nn.Module):
    """y = main(x) + skip(x): one block of the Wong et al. (2018) residual network.

    `main` is an nn.Sequential (conv–ReLU–conv); `skip` is a single Linear/Conv2d
    (1×1 conv, or 2×2 stride 2 when the block downsamples) or nn.Identity.
    The ReLU after the sum is a separate layer of the enclosing Sequential.
    """

    def __init__(self, main: nn.Sequential, skip: nn.Module):
        super().__init__()
        self.main = main
        self.skip = skip

    def forward(self, x):
        return self.main(x) + self.skip(x)
