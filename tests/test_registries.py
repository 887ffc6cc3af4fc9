"""One registry per concept: every command's choices, defaults and help derive from it."""
import dataclasses

import pytest

from figures import poster
from realdata import sweep, train
from realdata.attacks import ATTACKS
from realdata.bounds import BOUND_METHODS
from realdata.data import DATASETS
from realdata.methods import CERTIFIED_METHODS, METHODS, PAPER_METHODS, TRAIN_ATTACKS, TRAIN_METHODS
from realdata.models import ARCHS
from realdata.recipes import RECIPES, TrainConfig
from realdata.threats import NORMS, THREATS
from simulate import linear, spheres

REGISTRIES = {
    "dataset": DATASETS, "method": TRAIN_METHODS, "norm": NORMS, "arch": ARCHS, "attack": tuple(TRAIN_ATTACKS),
    "eval_attack": tuple(ATTACKS), "eval_bound": tuple(BOUND_METHODS) + ("none",),
}


def _action(parser, dest):
    return next(a for a in parser._actions if a.dest == dest)


@pytest.mark.parametrize("field, registry", REGISTRIES.items())
def test_config_choices_are_the_registries(field, registry):
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == field)
    assert tuple(f.metadata["choices"]) == tuple(registry)


@pytest.mark.parametrize("build", [train.build_parser, sweep.build_parser])
def test_training_commands_list_every_registered_name(build):
    help_text = "".join(build().format_help().split())  # argparse wraps lines, even inside names
    for field, registry in REGISTRIES.items():
        if field in ("dataset", "method", "norm") and build is sweep.build_parser:
            continue  # the sweep's grid flags, checked below
        assert f"({','.join(registry)})" in help_text, field


def test_sweep_defaults_and_help_come_from_the_registries():
    parser = sweep.build_parser()
    assert _action(parser, "methods").default == ",".join(PAPER_METHODS)
    assert set(PAPER_METHODS) <= set(TRAIN_METHODS)
    assert ", ".join(DATASETS) in _action(parser, "dataset").help
    assert ", ".join(NORMS) in _action(parser, "norm").help


def test_registries_refer_to_each_other_consistently():
    assert set(TRAIN_ATTACKS.values()) <= set(ATTACKS)
    assert set(CERTIFIED_METHODS.values()) <= set(BOUND_METHODS)
    assert tuple(METHODS) == TRAIN_METHODS and tuple(THREATS) == NORMS
    for recipe in RECIPES.values():
        for dataset in DATASETS:
            if any(d == dataset for d, _ in recipe):
                assert {m for d, m in recipe if d == dataset} == set(TRAIN_METHODS), dataset


def test_simulate_choices_are_drawn_from_the_registries():
    assert _action(linear.build_parser(), "at_attack").choices == tuple(TRAIN_ATTACKS)
    assert set(_action(spheres.build_parser(), "norm").choices) <= set(NORMS)
    assert set(linear.METHODS) <= set(TRAIN_METHODS) and set(spheres.METHODS) <= set(TRAIN_METHODS)


def test_poster_choices_are_its_figure_registry():
    parser = poster.build_parser()
    assert _action(parser, "figures").default == ",".join(poster.FIGURE_NAMES)
