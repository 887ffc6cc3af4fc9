"""A small network trained on scikit-learn's digits, shared by the attack and evaluation tests.

Cross-checks against reference attacks need a network whose robust accuracy is
neither 0 nor 100% at the budgets tested; a random net would not do.  The
digits (8×8, no files needed) scaled to [0, 1] are image-shaped [N, 1, 8, 8],
which torchattacks' PGDL2 requires.  Training is full-batch Adam, seeded, and
takes well under a second; the result is cached for the whole test session.
"""
from __future__ import annotations

import functools

import torch
from torch import nn


@functools.lru_cache(maxsize=None)
def digits_split():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return (x[:1200], y[:1200]), (x[1200:], y[1200:])


@functools.lru_cache(maxsize=None)
def trained_digits_net(seed: int = 0, hidden: int = 64, steps: int = 300) -> nn.Sequential:
    (x, y), _ = digits_split()
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                        nn.Linear(hidden, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval().requires_grad_(False)
    return net
