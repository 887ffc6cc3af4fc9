"""The CPU-scale experiments behind the poster, as command lines and as the grid that
`--run-missing quick` runs through the experiments' own Python APIs — one definition of both.

The simulate experiments' quick grids are defined once, in `realdata.synthetic.QUICK`; only
the training grid of the error-curve panel is chosen here, because it is a choice
about which columns the poster shows.
"""
from __future__ import annotations

from figures.style import eps_formatter
from realdata.synthetic import QUICK

POSTER_COMMAND = "python -m figures.poster --run-missing quick"
QUICK_TRAIN_METHODS = ("at", "coap", "crown-ibp")
# ℓ2 budgets in input space. Digits (8×8, pixels in [0, 1]) stand in for MNIST because they
# need no files and train in seconds; CIFAR-10 uses two of the poster's budgets, as each
# quick CIFAR cell costs minutes on a CPU.
QUICK_TRAIN_GRID = {
    "digits": (0.1, 0.25, 0.5, 1.0),
    "cifar10": (36 / 255, 108 / 255),
}
# Datasets that fill the poster's "MNIST-format" column; records of any one of them count.
MNIST_FORMAT = ("mnist", "fashion-mnist", "digits")


def _eps_list(values) -> str:
    fmt = eps_formatter(values)
    return ",".join(fmt(v) for v in values)


def train_command(dataset: str, out: str = "results") -> str:
    return (f"python -m realdata.sweep --dataset {dataset} --methods {','.join(QUICK_TRAIN_METHODS)} "
            f"--eps {_eps_list(QUICK_TRAIN_GRID[dataset])} --recipe quick --out {out}")


def train_commands(out: str = "results") -> list[str]:
    return [train_command(dataset, out) for dataset in QUICK_TRAIN_GRID]


def quick_command(kind: str, out: str = "results") -> str:
    """The command line of the quick grid of simulate experiment `kind` (`realdata.synthetic.QUICK`)."""
    grid = QUICK[kind]
    methods = f" --methods {','.join(grid.methods)}" if grid.methods else ""
    flags = f" {grid.flags}" if grid.flags else ""
    return f"python -m simulate.{kind} --preset quick{methods} --eps {_eps_list(grid.eps)}{flags} --out {out}"


def spheres_command(out: str = "results") -> str:
    return quick_command("spheres", out)


def linear_command(out: str = "results") -> str:
    return quick_command("linear", out)
