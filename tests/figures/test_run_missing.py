"""`--run-missing quick`: what counts as missing, bad scales and datasets, and records of a
real (tiny) training run drawn like any other."""
import pytest

from figures import error_grid
from figures.commands import QUICK_TRAIN_GRID, train_command
from figures.records import Results, load_results
from figures.run_missing import check_datasets, missing_work, run_missing
from figures.spec import render
from realdata.errors import UserError


def labels(results, datasets=tuple(QUICK_TRAIN_GRID)):
    return [label for label, _ in missing_work(results, datasets)]


def test_nothing_missing_when_every_kind_and_column_has_records(results_dir, tmp_path, writers):
    results = load_results(results_dir)
    writers["write"](tmp_path, "one_step", "one_step-x", {"eps": 0.8, "gamma": 1.0}, {})
    results.by_kind["one_step"] = load_results(tmp_path).of("one_step")
    assert labels(results) == []


def test_each_missing_kind_and_column_is_named(tmp_path, writers):
    out = tmp_path / "results"
    writers["train"](out, datasets=("fashion-mnist",), methods=("at",), seeds=(0,))
    found = labels(load_results(out))
    assert [x.split(" (")[0].split(":")[0] for x in found] == [
        "simulate one_step", "simulate linear", "simulate spheres", "train cifar10"]
    assert len(labels(Results(tmp_path / "none"))) == 3 + len(QUICK_TRAIN_GRID)


def test_bad_scale_and_dataset_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="quick"):
        run_missing(tmp_path, scale="paper")
    with pytest.raises(UserError, match="choose from"):
        check_datasets(["imagenet"])


def test_unrunnable_experiment_is_reported_and_skipped(tmp_path, monkeypatch, writers):
    """CIFAR-10 data that cannot be found must not stop the rest (here: the only work left)."""
    out = tmp_path / "results"
    writers["train"](out, datasets=("digits",), methods=("at",), seeds=(0,))
    writers["spheres"](out, methods=("at",), seeds=(0,))
    writers["linear"](out, methods=("at",), seeds=(0,))
    writers["write"](out, "one_step", "one_step-x", {"eps": 0.8, "gamma": 1.0}, {})
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "no-cifar-here"))
    lines = run_missing(out, datasets=["cifar10"], progress=False, log=lambda *_: None)
    assert len(lines) == 1 and "skipped train cifar10" in lines[0] and "CIFAR" in lines[0]


@pytest.mark.slow
def test_records_of_a_real_tiny_run_are_drawn(tmp_path):
    from realdata.sweep import run_grid
    out = tmp_path / "results"
    # large enough to learn (a run at chance would be left out of the summary as collapsed)
    run_grid("digits", ["at", "coap"], [0.1], [0], out=out, progress=False,
             overrides={"epochs": 3, "train_size": 300, "test_size": 40, "lr": 0.01, "eval_steps": 2,
                        "attack_steps": 2})
    results = load_results(out)
    assert not results.problems and len(results.of("train")) == 2
    rendered = render(error_grid.SPEC, results, tmp_path / "figures", dpi=20)
    assert all(p.stat().st_size > 1000 for p in rendered.paths)
    digits = [ln for ln in rendered.summary if ln.startswith("Digits")]
    assert len(digits) == len(error_grid.METRICS) and "COAP" in digits[0]
    assert any(train_command("cifar10", out) in ln for ln in rendered.summary)
