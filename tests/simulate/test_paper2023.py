"""The 2023 figure grids: configs, the figure table's reduction (mean ± se, Σ_t unstable) and the CLI."""
import math

import pytest

from realdata.errors import UserError
from realdata.synthetic import FIGURES_2023, FigureGrid, SpheresConfig
from simulate import spheres
from simulate.paper2023 import figure_rows, mean_se, unstable_sum

TINY = SpheresConfig(preset="2023", norm="directions", k=1, eps=0.5, d=5, n=20, n_test=100, epochs=2, lrs=(0.1,),
                     per_epoch_test=20)


def test_mean_and_standard_error():
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)  # sample std √2, over √2
    assert mean_se([4.0]) == (4.0, None) and mean_se([]) == (None, None)


def test_tiny_figure_rows_carry_seeds_errors_and_coap_unstable_sums():
    grid = FigureGrid("tiny", TINY, "k", (1, 2), methods=("st", "coap"), seeds=(0, 1))
    records = spheres.run_spheres(grid.configs(), out=None, progress=False)
    rows = figure_rows(records, grid)
    assert [(r["value"], r["method"], r["seeds"]) for r in rows] == [(1, "ST", 2), (1, "COAP", 2), (2, "ST", 2),
                                                                     (2, "COAP", 2)]
    for row in rows:
        assert 0 <= row["std"] <= row["rob"] <= 100 and row["rob_se"] is not None
        assert (row["unst_sum"] is None) == (row["method"] == "ST")  # per-epoch values for COAP only
    coap = [r for r in records if r["config"]["method"] == "coap" and r["config"]["k"] == 1]
    expected = sum(unstable_sum(r) for r in coap) / 2
    assert math.isclose(rows[1]["unst_sum"], expected) and len(coap[0]["history"]) == TINY.epochs


def test_figure_grids_follow_the_paper():
    assert FIGURES_2023["2023-l2"].values == (1.0, 2.0, 3.0, 4.0)
    assert FIGURES_2023["2023-k"].values == tuple(range(1, 11)) and FIGURES_2023["2023-k"].base.eps == 5.0
    assert [1 / g for g in FIGURES_2023["2023-margin"].values] == [1 / 30, 1 / 24, 1 / 20]
    assert [round(e * 10 ** 0.5, 9) for e in FIGURES_2023["2023-linf"].values] == [1.0, 2.0, 2.5, 3.0]
    for grid in FIGURES_2023.values():
        configs = grid.configs()
        assert {c.seed for c in configs} == set(range(5)) and len(configs) == 5 * 3 * len(grid.values)
        assert all(c.per_epoch == (c.method == "coap") for c in configs)


def test_figure_flag_sizes_the_grid_and_refuses_setting_flags():
    args = spheres.build_parser().parse_args(["--figure", "2023-l2", "--epochs", "7", "--seeds", "3"])
    configs = spheres.configs_from_args(args)
    assert len(configs) == 12 and {c.epochs for c in configs} == {7} and {c.seed for c in configs} == {3}
    with pytest.raises(UserError, match="drop --norm"):
        spheres.configs_from_args(spheres.build_parser().parse_args(["--figure", "2023-k", "--norm", "l2"]))


def test_a_figure_reads_its_records_at_one_size():
    from dataclasses import asdict, replace

    from simulate.paper2023 import figure_records

    grid = FIGURES_2023["2023-margin"]
    full = [{"config": asdict(c), "metrics": {}} for c in grid.configs((0, 1))]
    small = [{"config": asdict(replace(c, epochs=3)), "metrics": {}} for c in grid.configs((0,))]
    other = [{"config": asdict(replace(c, r0=5.0)), "metrics": {}} for c in grid.configs((0, 1, 2))]
    chosen, size = figure_records(full + small + other, grid)
    assert len(chosen) == len(full) and f"epochs={grid.base.epochs}" in size  # r0=5 is another setting
