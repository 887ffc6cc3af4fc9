"""The CPU-scale experiments behind the poster, as command lines and as the grid that
`--run-missing quick` runs through the experiments' own Python APIs — one definition of both.

The simulate experiments' quick grids are defined once, in `realdata.synthetic.QUICK`; only
the training grid of the error-curve panel is chosen here, because it is a choice
about which columns the poster shows.
"""
from __future__ import annotations

from dataclasses import dataclass

from figures.style import eps_formatter
from realdata.synthetic import QUICK

POSTER_COMMAND = "python -m figures.poster --run-missing quick"


@dataclass(frozen=True)
class TrainGrid:
    """The quick training grid of one poster column: methods × ℓ2 budgets × seeds."""
    methods: tuple
    eps: tuple
    seeds: tuple

    @property
    def cells(self) -> int:
        return len(self.methods) * len(self.eps) * len(self.seeds)


# ℓ2 budgets in input space, with the quick recipes of realdata.recipes, measured with
# benchmarks/quick_grid.py: every method (st, at, coap, crown-ibp, ibp) ends with its clean
# training error below chance at every budget here. Interval bounds of an ℓ2 ball are the
# ℓ∞ box of the same radius, so IBP sets the ceiling: on digits (8×8, pixels in [0, 1]) it
# reached chance at ε = 1 (0.894), on the CIFAR-10 subset it was at 0.844 at 108/255 but
# 0.76 at 72/255 (ST: 0.66). Digits stand in for MNIST: no files, seconds a cell, so all five
# methods with two seeds (the figures show the spread). A quick CIFAR-10 cell costs up to
# about 3.5 CPU minutes (COAP), so CIFAR-10 runs AT and the paper poster's two certified
# methods, one seed, at two of the paper's budgets (docs/PAPER.md §4: 9 … 108/255).
QUICK_TRAIN_GRID = {
    "digits": TrainGrid(methods=("st", "at", "coap", "crown-ibp", "ibp"), eps=(0.1, 0.2, 0.35, 0.5), seeds=(0, 1)),
    "cifar10": TrainGrid(methods=("at", "coap", "crown-ibp"), eps=(36 / 255, 72 / 255), seeds=(0,)),
}
# Datasets that fill the poster's "MNIST-format" column; records of any one of them count.
MNIST_FORMAT = ("mnist", "fashion-mnist", "digits")


def describe_quick_grid() -> str:
    """The quick training grids and the recipe values of every cell, for --help."""
    from realdata.recipes import describe_recipes
    lines = [f"  {dataset}: {', '.join(g.methods)} × ε {eps_list(g.eps)} (ℓ2) × seeds "
             f"{','.join(map(str, g.seeds))} = {g.cells} runs" for dataset, g in QUICK_TRAIN_GRID.items()]
    return "\n".join(lines + ["  with these quick recipes (ε above replaces the recipe's):",
                              describe_recipes(("quick",), tuple(QUICK_TRAIN_GRID),
                                               {m for g in QUICK_TRAIN_GRID.values() for m in g.methods})])


def eps_list(values) -> str:
    fmt = eps_formatter(values)
    return ",".join(fmt(v) for v in values)


def train_command(dataset: str, out: str = "results") -> str:
    grid = QUICK_TRAIN_GRID[dataset]
    return (f"python -m realdata.sweep --dataset {dataset} --methods {','.join(grid.methods)} "
            f"--eps {eps_list(grid.eps)} --seeds {','.join(map(str, grid.seeds))} --recipe quick --out {out}")


def train_commands(out: str = "results") -> list[str]:
    return [train_command(dataset, out) for dataset in QUICK_TRAIN_GRID]


def quick_command(kind: str, out: str = "results", methods=None) -> str:
    """The command line of the quick grid of simulate experiment `kind` (`realdata.synthetic.QUICK`),
    with its own methods or the given ones."""
    grid = QUICK[kind]
    methods = methods or grid.methods
    methods = f" --methods {','.join(methods)}" if methods else ""
    flags = f" {grid.flags}" if grid.flags else ""
    return f"python -m simulate.{kind} --preset quick{methods} --eps {eps_list(grid.eps)}{flags} --out {out}"


def spheres_command(out: str = "results") -> str:
    return quick_command("spheres", out)


def linear_command(out: str = "results") -> str:
    return quick_command("linear", out)
