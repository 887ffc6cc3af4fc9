"""Per-epoch training checkpoints: written atomically, refused clearly when damaged.

A checkpoint holds everything that decides the rest of a run — model, optimiser and
scheduler states, the random-number generators that carry state across epochs, the epoch
reached, the history and the time spent — so a run killed after epoch k and resumed
produces the numbers an uninterrupted run would (bit for bit on the CPU).

Devices.  The checkpoint names the device type it was written on ("cpu" or "cuda"): a
generator's state is device-specific (a CPU generator's is 5056 bytes, a CUDA one's 16), and
the same run gives other numbers on another device type, so the run's hash includes the
device type too (`realdata.results.config_hash`).  Of CUDA's global generators only the
training device's own state is kept and restored, so a run resumes with any number of
visible GPUs; the per-process attack streams are reseeded every epoch
(`realdata.train`), so it also resumes on another number of processes.
"""
from __future__ import annotations

from pathlib import Path

import torch

from realdata.errors import UserError
from realdata.results import write_atomic

CHECKPOINT_VERSION = 2  # 2: device_type, and CUDA's state of the training device only


def save_checkpoint(path, state: dict) -> Path:
    """torch.save via a temp file in the same folder and an atomic rename: a kill mid-write
    leaves the previous checkpoint intact, never a truncated one."""
    return write_atomic(path, lambda handle: torch.save({"version": CHECKPOINT_VERSION, **state}, handle),
                        binary=True)


def load_checkpoint(path, config_hash: str, device_type: str = "cpu") -> dict | None:
    """The checkpoint at `path`, None if there is none; a damaged or foreign one raises.

    ``weights_only`` loading: a checkpoint is data, and unpickling arbitrary objects from a
    file on disk would let a planted file run code.
    """
    path = Path(path)
    if not path.exists():
        return None
    fix = f"delete {path} to start this run over (the finished records are untouched)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on a damaged zip/pickle
        raise UserError(f"the checkpoint {path} is corrupt ({type(err).__name__}); {fix}.") from None
    required = {"version", "config_hash", "epoch", "model", "optimizer", "scheduler", "rng", "history", "train_time_s"}
    if not isinstance(state, dict) or not required <= set(state):
        raise UserError(f"the checkpoint {path} is incomplete or not a training checkpoint; {fix}.")
    if state["version"] != CHECKPOINT_VERSION or state["config_hash"] != config_hash:
        raise UserError(f"the checkpoint {path} belongs to another configuration or version; {fix}.")
    if state.get("device_type") != device_type:
        raise UserError(other_device_message(path, state.get("device_type"), device_type))
    return state


def other_device_message(path, written_on: str | None, running_on: str) -> str:
    """The one sentence for a checkpoint written on another device type."""
    return (f"the checkpoint {path} was written by this run on {written_on or 'an unknown device'}, and its random "
            f"state and numbers do not carry over to {running_on}; rerun with --device {written_on or 'cpu'} to "
            f"resume it, or delete it to start over on {running_on}.")


def rng_state(generators: dict[str, torch.Generator], device: torch.device) -> dict:
    """States of the named generators, torch's global CPU generator and, when training on a GPU,
    that GPU's global generator (layers such as dropout draw from it; no other GPU's is needed)."""
    state = {name: g.get_state() for name, g in generators.items()}
    state["torch"] = torch.get_rng_state()
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, generators: dict[str, torch.Generator], device: torch.device, path=None) -> None:
    """Restore what applies to this process: the named generators, the CPU's global one, and
    the training GPU's own global generator when both the checkpoint and this run have one."""
    for name, g in generators.items():
        try:
            g.set_state(state[name])
        except (KeyError, RuntimeError) as err:  # another device type's state, or an older layout
            raise UserError(f"the checkpoint {path} holds no usable state for the {name!r} random stream "
                            f"({type(err).__name__}); delete it to start this run over.") from None
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
