"""figures.paper2023 draws each 2023 spheres figure from records of its grid (and says what to run without)."""

import pytest

from figures.paper2023 import main, spec
from figures.records import load_results
from figures.spec import render
from realdata.errors import UserError
from realdata.synthetic import FIGURES_2023
from tests.figures.conftest import write


def _write_grid(out, name, seeds=(0, 1)):
    """Records of figure `name`'s configs: COAP's robust error grows with 1/γ, its history sums to 0.1·epochs."""
    for config in FIGURES_2023[name].configs(seeds):
        c = config.__dict__ | {"lrs": list(config.lrs)}
        rob = 0.1 + (0.5 if config.method == "coap" else 0.0) / config.margin + 0.01 * config.seed
        history = [{"epoch": e, "unstable_fraction": 0.1} for e in (1, 2, 3)] if config.per_epoch else []
        write(out, "spheres", config.name, c, {"standard_error": 0.05, "robust_error": rob}, history)


def test_margin_figure_is_drawn_with_means_and_unstable_sums(tmp_path):
    _write_grid(tmp_path / "r", "2023-margin")
    rendered = render(spec("2023-margin"), load_results(tmp_path / "r"), tmp_path / "out")
    assert all(p.exists() for p in rendered.paths)
    assert rendered.summary[0] == "2023-margin: 9 (value, method) cells, 2 seeds each"
    coap20 = next(line for line in rendered.summary if "margin=20 COAP" in line)
    assert f"robust {100 * (0.1 + 0.5 / 20 + 0.005):.1f}%" in coap20


def test_a_figure_without_records_names_its_command(tmp_path, capsys):
    _write_grid(tmp_path / "r", "2023-margin", seeds=(0,))
    assert main(["--figure", "2023-k", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    assert "python -m simulate.spheres --figure 2023-k" in capsys.readouterr().out
    with pytest.raises(UserError, match="choose from"):
        spec("2023-nope")
