"""Per-epoch training checkpoints: written atomically, refused clearly when damaged.

A checkpoint holds everything that decides the rest of a run — model, optimiser and
scheduler states, every random-number generator, the epoch reached, the history and the
time spent — so a run killed after epoch k and resumed produces the numbers an
uninterrupted run would (bit for bit on the CPU).
"""
from __future__ import annotations

from pathlib import Path

import torch

from realdata.errors import UserError
from realdata.results import write_atomic

CHECKPOINT_VERSION = 1


def save_checkpoint(path, state: dict) -> Path:
    """torch.save via a temp file in the same folder and an atomic rename: a kill mid-write
    leaves the previous checkpoint intact, never a truncated one."""
    return write_atomic(path, lambda handle: torch.save({"version": CHECKPOINT_VERSION, **state}, handle),
                        binary=True)


def load_checkpoint(path, config_hash: str) -> dict | None:
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
    return state


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    """States of the named generators and of torch's global generators (CPU and CUDA)."""
    state = {name: g.get_state() for name, g in generators.items()}
    state["torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    for name, g in generators.items():
        g.set_state(state[name])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
