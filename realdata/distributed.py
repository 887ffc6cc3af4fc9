"""Data-parallel training across the processes `torchrun` starts (NCCL on GPUs, gloo on CPUs).

Every process sees the same global batch (same permutation, same augmentation), trains on
its contiguous share of it and the gradients are summed across processes, each share's
loss having been weighted by its fraction of the batch.  The update therefore equals the
single-process update on the whole batch, up to floating-point summation order.

Gradients are all-reduced by hand rather than through DistributedDataParallel because the
bound-based objectives walk the model's layers themselves instead of calling its forward,
which DDP's hooks rely on; one flat all-reduce per step costs the same.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from realdata.errors import UserError

# Rank 0 evaluates alone (AutoAttack on a full test set can take hours) while the others
# wait at a barrier; the default 30-minute timeout would kill them.
BARRIER_TIMEOUT = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # whether this context initialised the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = str(device)  # torch.device objects too
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"unknown device {device!r}; choose cpu, cuda, cuda:N or auto.")
    return torch.device(device)


def setup(device: str | None = None) -> Context:
    """Join the process group torchrun describes in the environment (if any) → Context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1 and not dist.is_initialized():
        return Context(device=dev)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
        owns = True
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(), device=dev, owns_group=owns)


def shard(n: int, ctx: Context) -> slice:
    """This process's contiguous share of a batch of n (shares differ by at most one)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (1 if ctx.rank < extra else 0))


def sum_gradients(parameters, ctx: Context) -> None:
    """All-reduce (sum) the gradients of `parameters` in one flat buffer."""
    if ctx.world_size == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    for p in params:
        if p.grad is None:  # a share may leave a parameter untouched; its gradient is 0 there
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()


def sum_scalars(values: list[float], ctx: Context) -> list[float]:
    """Sum per-process statistics (loss totals, counts) across processes."""
    if ctx.world_size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()

