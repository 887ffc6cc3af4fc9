"""Full float32 precision for certified bounds: TF32 (and CPU bf16) off while a bound is computed.

On Ampere and newer GPUs torch runs float32 convolutions in TF32 by default (cuDNN), and
matmuls too when a user or library allows it: a 10-bit mantissa, about 1e-3 relative
error.  A certified bound computed that way is not a bound on the float32 model: a point
near the margin can be certified although an attack breaks it.  `full_float32()` sets the
float32 precision of every matmul and convolution backend to IEEE for the duration of a
bound computation and restores the caller's settings afterwards.

Scoped, not global: training and attacks may keep TF32's speed (an attack or a gradient
step computed in TF32 is still a valid attack or step; only a certificate must be exact),
and a library call must not change its caller's global settings.  The gradient of a
bound-based training loss is computed later, by the caller's ``backward()``, outside the
scope; it steers the optimiser and certifies nothing.  Applied at the public bounds entry
(`realdata.bounds`), so every caller — training, evaluation, benchmarks — is covered.
"""
from __future__ import annotations

import contextlib

import torch

#: (backend, operator) pairs whose float32 precision `full_float32` pins to IEEE.
BACKENDS = (("cuda", "matmul"), ("cudnn", "conv"), ("mkldnn", "matmul"), ("mkldnn", "conv"))


def precision_flags() -> dict:
    """{"backend.op": its precision setting object} on this torch (2.9+ API); empty on older torch."""
    flags = {}
    for backend, op in BACKENDS:
        obj = getattr(getattr(torch.backends, backend, None), op, None)
        if getattr(obj, "fp32_precision", None) is not None:
            flags[f"{backend}.{op}"] = obj
    return flags


@contextlib.contextmanager
def full_float32():
    """Inside: float32 matmuls and convolutions in IEEE precision on every backend (no TF32, no bf16).

    Usable as ``with full_float32():`` or as a decorator ``@full_float32()``.
    """
    flags = list(precision_flags().values())
    if flags:
        saved = [flag.fp32_precision for flag in flags]
        try:
            for flag in flags:
                flag.fp32_precision = "ieee"
            yield
        finally:
            for flag, value in zip(flags, saved):
                flag.fp32_precision = value
        return
    # torch < 2.9: the legacy switches (mixing them with the new API raises, so only here)
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
