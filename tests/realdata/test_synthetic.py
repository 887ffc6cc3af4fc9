"""One source per synthetic setting: data, recipes, simulate and figures all see realdata.synthetic."""
from dataclasses import replace

import pytest

from figures import commands
from realdata.data import load_dataset
from realdata.errors import UserError
from realdata.recipes import RECIPES, from_synthetic, make_config
from realdata.synthetic import (LINEAR_PRESETS, METHODS, QUICK, SPHERES_PRESETS, LinearConfig, SpheresConfig,
                                preset_help, quick_configs)
from simulate import linear, one_step, quick, spheres


@pytest.mark.parametrize("preset", list(SPHERES_PRESETS))
def test_spheres_data_defaults_are_the_presets(preset):
    config = SPHERES_PRESETS[preset]
    params = load_dataset("spheres", preset=preset, n_test=7).params  # n_test small: only the defaults matter
    assert (params["d"], params["n"], params["r0"], params["r1"]) == (config.d, config.n, config.r0,
                                                                      config.r0 + config.margin)
    assert {k: params[k] for k in ("d", "n", "r0", "r1")} == {k: config.data_params()[k] for k in ("d", "n", "r0", "r1")}


def test_linear_data_defaults_are_the_paper_preset():
    expected = LINEAR_PRESETS["paper"].data_params()
    params = load_dataset("linear", n_test=3).params
    assert {k: params[k] for k in ("d", "gamma", "sigma", "n")} == {k: expected[k] for k in ("d", "gamma", "sigma", "n")}


@pytest.mark.parametrize("recipe,dataset,preset", [("paper", "spheres", SPHERES_PRESETS["2022"]),
                                                   ("quick", "spheres", SPHERES_PRESETS["quick"]),
                                                   ("paper", "linear", LINEAR_PRESETS["paper"]),
                                                   ("quick", "linear", LINEAR_PRESETS["quick"])])
@pytest.mark.parametrize("method", METHODS)
def test_recipes_and_simulate_train_the_preset(recipe, dataset, preset, method):
    config = replace(preset, method=method)
    trained = from_synthetic(config)
    assert make_config(dataset, method, recipe) == trained == RECIPES[recipe][(dataset, method)]
    assert (trained.epochs, trained.batch_size, trained.momentum, trained.width) == (
        config.epochs, min(config.batch_size, config.n), config.momentum, config.width)
    assert trained.data_params == config.data_params() and trained.lr in config.lrs


def test_simulate_and_figures_read_the_same_tables():
    assert spheres.PRESETS is SPHERES_PRESETS and linear.PRESETS is LINEAR_PRESETS
    assert set(quick.RUNNERS) == set(QUICK)
    configs = quick_configs("linear")
    assert {c.eps for c in configs} == set(QUICK["linear"].eps) and all(c.preset == "quick" for c in configs)
    assert "--eps 3,4.5,5.5" in commands.linear_command() and "--preset quick" in commands.spheres_command()
    assert len(quick_configs("one_step")) == len(QUICK["one_step"].eps)
    assert isinstance(quick_configs("one_step")[0], one_step.OneStepConfig)


def test_preset_help_names_every_difference():
    text = preset_help(SPHERES_PRESETS)
    assert "2022: the defaults" in text and f"d={SPHERES_PRESETS['2023'].d}" in text
    assert f"epochs={SPHERES_PRESETS['quick'].epochs}" in text


def test_configs_refuse_bad_values():
    with pytest.raises(UserError, match="method"):
        SpheresConfig(method="nope")
    with pytest.raises(UserError, match="gamma"):
        LinearConfig(gamma=0.0)
    with pytest.raises(UserError, match="record kind"):
        quick_configs("cifar10")
    assert from_synthetic(LINEAR_PRESETS["paper"], lr=0.1).lr == 0.1
