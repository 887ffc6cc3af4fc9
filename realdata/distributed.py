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

# The longest any process waits at a collective is one unit of work that another process does
# alone or more slowly: one training step, one evaluation round (every process evaluates one
# batch between two gathers), writing a checkpoint or record, or rank 0's CIFAR-10 download
# and unpacking (170 MB).  30 minutes covers each with a wide margin and still ends a real hang
# (a process that died without torchrun noticing) the same evening, not after 12 hours.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)

#: the device types a run can choose; a run's records and checkpoints are per device type
DEVICE_TYPES = ("cpu", "cuda")


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

    def decide(self, choose):
        """`choose()` run on rank 0 alone, its (picklable) answer given to every process: one
        decision for all even when the processes see different files (no shared output folder)."""
        if self.world_size == 1:
            return choose()
        box = [None]
        if self.is_main:
            try:
                box = [(choose(), None)]
            except UserError as err:  # the others stop with the same sentence instead of waiting
                box = [(None, err)]
        dist.broadcast_object_list(box, src=0)
        value, err = box[0]
        if err is not None:
            raise err
        return value

    def main_first(self, run):
        """`run()` on rank 0 first (e.g. download and unpack a data set) while the others wait,
        then on the others (finding the files in place) → its result on each process.  A
        UserError on rank 0 stops every process with its sentence."""
        if self.world_size == 1:
            return run()
        first = []
        self.decide(lambda: first.append(run()))  # rank 0 runs; its error, if any, reaches all
        return first[0] if self.is_main else run()

    def gather(self, obj) -> list:
        """Every process's `obj`, in rank order, on every process."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = str(device)  # torch.device objects too
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"unknown device {device!r}; choose cpu, cuda, cuda:N or auto.")
    return torch.device(device)


def device_type(device) -> str:
    """ "cpu" or "cuda" for a device name or object, without asking whether it is there
    (None or "auto": the type `resolve_device` picks)."""
    if device in (None, "auto"):
        return resolve_device(device).type
    kind = str(device).split(":")[0]
    if kind not in DEVICE_TYPES:
        raise UserError(f"unknown device {device!r}; choose cpu, cuda, cuda:N or auto.")
    return kind


def init_group(backend: str, timeout: datetime.timedelta = COLLECTIVE_TIMEOUT) -> None:
    """Start the process group torchrun describes, so that `destroy_process_group` can end it.

    torch imports `torch._dynamo` lazily, on the first optimiser a process builds; if a group
    exists by then, dynamo keeps ten references to it, `destroy_process_group` cannot free it,
    and gloo's worker threads live on into interpreter shutdown, where a thread still
    releasing a finished collective's tensors aborts the process (SIGABRT after every result
    is written; 3 of 52 two-process test runs).  Imported first, dynamo holds no group.  A training
    run pays the import (≈ 2.7 s) for its optimiser anyway."""
    import torch._dynamo  # noqa: F401  (for its side effect, see above)
    dist.init_process_group(backend, timeout=timeout)


def setup(device: str | None = None) -> Context:
    """Join the process group torchrun describes in the environment (if any) → Context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1 and not dist.is_initialized():
        return Context(device=dev)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        init_group(backend)
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


def sum_gradients(parameters, ctx: Context, flag: torch.Tensor | None = None) -> torch.Tensor | None:
    """All-reduce (sum) the gradients of `parameters` in one flat buffer; → `flag` summed too.

    A parameter that has no gradient on any process keeps `.grad = None`, so the optimiser
    leaves it alone (zeros would still move it through momentum, Adam's moments or weight
    decay).  `flag` (a 0-d tensor, e.g. "this process's loss is not finite") travels in the
    same buffer, so every process learns the sum without another collective or host sync.
    """
    params = [p for p in parameters if p.requires_grad]
    if ctx.world_size == 1:
        return flag
    like = next((p.grad for p in params if p.grad is not None), params[0])
    has = torch.tensor([p.grad is not None for p in params], dtype=like.dtype, device=like.device)
    extra = flag.reshape(1).to(like.dtype) if flag is not None else has[:0]
    flat = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in params]
                     + [has, extra])
    dist.all_reduce(flat)
    offset, anywhere = 0, flat[flat.numel() - len(params) - extra.numel():flat.numel() - extra.numel()]
    for p, used in zip(params, anywhere.unbind()):
        if p.grad is not None:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        elif used:  # another process's share reached it (one host sync, only when shares differ)
            p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    return flat[-1] if flag is not None else None


def sum_scalars(values, ctx: Context) -> list[float]:
    """Sum per-process statistics (loss totals, counts; a list or a device tensor) across
    processes → Python floats (one host sync)."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if ctx.world_size > 1:
        t = t.to(ctx.device)
        dist.all_reduce(t)
    return t.tolist()
