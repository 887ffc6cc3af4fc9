"""Named random streams: one seed per purpose, so no two streams of a run (or of two runs with
different seeds) start from the same state.

A stream may be reseeded from a key (an epoch, a rank, a batch) instead of carrying its state:
then a run resumed after epoch k, or a run on another number of processes, draws exactly what
an uninterrupted run would, and no checkpoint has to hold a per-process or per-device state.
"""
from __future__ import annotations

import zlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    """The seed of the stream named `stream` of a run seeded `seed`; `build_model` draws the
    initialisation from `seed` itself."""
    return zlib.crc32(f"{int(seed)}:{stream}".encode())


def generator(seed: int, stream: str, device="cpu") -> torch.Generator:
    """A generator on `device` seeded for the stream `stream` of a run seeded `seed`."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))
