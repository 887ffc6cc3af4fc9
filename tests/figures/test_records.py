"""Grouping records over seeds: the numbers every figure plots."""
import json
import shutil

import numpy as np
import pytest

from figures.records import history_series, load_results, parse_where, pooled_settings, select, series
from realdata.errors import UserError


def raw_records(directory, kind):
    return [r for r in (json.loads(p.read_text()) for p in directory.glob("*.json")) if r["kind"] == kind]


def test_series_is_mean_and_sample_std_over_seeds(results_dir):
    results = load_results(results_dir)
    curves = series(results.of("train"), ("dataset", "method"), "eps", "robust_error")
    raw = [r for r in raw_records(results_dir, "train")
           if r["config"]["dataset"] == "digits" and r["config"]["method"] == "coap" and r["config"]["eps"] == 2.0]
    values = [r["metrics"]["robust_error"] for r in raw]
    point = [p for p in curves[("digits", "coap")] if p.x == 2.0][0]
    assert point.n == len(values) == 2
    assert point.mean == pytest.approx(np.mean(values))
    assert point.std == pytest.approx(np.std(values, ddof=1))
    assert [p.x for p in curves[("digits", "coap")]] == [0.5, 1.0, 2.0]


def test_history_series_aligns_epochs(results_dir):
    results = load_results(results_dir)
    at_eps = [r for r in results.of("spheres") if r["config"]["eps"] == 2.0]
    curves = history_series(at_eps, ("method",), "alignment")
    assert [p.x for p in curves[("at",)]] == [1.0, 2.0, 3.0, 4.0]
    assert all(p.n == 2 for p in curves[("at",)])


def test_duplicate_file_counts_once(results_dir, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results_dir, copy)
    first = sorted(copy.glob("digits-at-*.json"))[0]
    shutil.copy(first, copy / "duplicate-of-first.json")
    assert len(load_results(copy).of("train")) == len(load_results(results_dir).of("train"))


def test_where_filters_and_rejects_bad_syntax(results_dir):
    where = parse_where(["dataset=cifar10", "eps=36/255"])
    kept = select(load_results(results_dir).of("train"), where)
    assert kept and all(r["config"]["dataset"] == "cifar10" for r in kept)
    assert all(abs(r["config"]["eps"] - 36 / 255) < 1e-12 for r in kept)
    filtered = load_results(results_dir, {"dataset": "cifar10"})
    assert {r["config"]["dataset"] for r in filtered.of("train")} == {"cifar10"}
    assert filtered.of("linear") and filtered.of("spheres")  # they have no "dataset" key: kept
    assert "selects nothing" in load_results(results_dir, {"datset": "cifar10"}).problems[0]
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_where(["dataset"])


def test_pooled_settings_name_the_differing_key(results_dir):
    records = load_results(results_dir).of("train")
    assert pooled_settings(records, ("dataset", "norm", "method", "eps")) == []
    changed = [dict(records[0], config=dict(records[0]["config"], epochs=99, seed=5))] + records
    warnings = pooled_settings(changed, ("dataset", "norm", "method", "eps"))
    assert len(warnings) == 1 and "epochs" in warnings[0] and "--where" in warnings[0]


def test_corrupt_and_missing_become_problems(results_dir, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results_dir, copy)
    (copy / "broken.json").write_text("{not json")
    results = load_results(copy)
    assert len(results.problems) == 1 and "broken.json" in results.problems[0]
    assert results.count == load_results(results_dir).count
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no result records" in load_results(empty).problems[0]
    assert "does not exist" in load_results(tmp_path / "nowhere").problems[0]
    with pytest.raises(UserError, match="is a file"):
        load_results(copy / "broken.json")


def test_every_training_method_has_its_own_colour_marker_and_line():
    from figures.style import METHOD_ORDER, METHOD_STYLES
    from realdata.methods import TRAIN_METHODS

    assert set(METHOD_STYLES) == set(TRAIN_METHODS) == set(METHOD_ORDER)
    for attribute in ("color", "marker", "linestyle", "label"):
        values = [str(getattr(style, attribute)) for style in METHOD_STYLES.values()]
        assert len(set(values)) == len(values), attribute
