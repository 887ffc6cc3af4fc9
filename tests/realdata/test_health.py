"""realdata.health: the one definition of a diverged or collapsed run, and fit/train using it."""
import math

import pytest

from realdata import health
from realdata.health import DivergenceMonitor, at_chance, chance_error, record_health
from realdata.recipes import make_config
from realdata.train import train


def test_chance_error_is_one_minus_one_over_k():
    assert chance_error(10) == pytest.approx(0.9)
    assert chance_error(2) == 0.5
    with pytest.raises(ValueError):
        chance_error(1)


@pytest.mark.parametrize("error, k, expected", [
    (0.9, 10, True), (0.88, 10, True), (1.0, 10, True), (0.85, 10, False),
    (0.5, 2, True), (0.474, 2, False), (math.nan, 10, False), (None, 10, False), (True, 2, False)])
def test_at_chance_uses_the_stated_margin(error, k, expected):
    assert at_chance(error, k) is expected


def test_record_health_reads_the_flag_then_the_final_training_error():
    assert record_health({"diverged": True, "metrics": {"train_error": 0.1}, "num_classes": 10}) == "diverged"
    assert record_health({"diverged": False, "metrics": {"train_error": 0.9}, "num_classes": 10}) == "collapsed"
    assert record_health({"diverged": False, "metrics": {"train_error": 0.2}, "num_classes": 10}) is None
    # older records: classes from the per-class list, training error from the last epoch
    old = {"metrics": {"per_class_standard_error": [0.5, 0.5]}, "history": [{"train_error": 0.49}]}
    assert record_health(old) == "collapsed"
    assert record_health({"metrics": {}}) is None


def _epoch(i, loss, clean=None):
    row = {"epoch": i, "loss": loss}
    if clean is not None:
        row["clean_train_error"] = clean
    return row


def test_monitor_non_finite_batch_loss():
    m = DivergenceMonitor(10, epochs=4)
    assert m.batch_loss(2.3, 1) is None
    assert "non-finite" in m.batch_loss(math.inf, 1)


def test_monitor_loss_far_above_its_start():
    m = DivergenceMonitor(10, epochs=4)
    m.batch_loss(2.3, 1)
    assert m.epoch(_epoch(1, 200.0, 0.9)) is None           # under 100 × 2.3
    assert "over 100x its start" in m.epoch(_epoch(2, 231.0))


def test_monitor_chance_from_warmup_to_end_without_progress_is_divergence():
    m = DivergenceMonitor(10, epochs=4, warmup=1, ramp=1)
    assert m.check_at == 2
    m.batch_loss(2.3, 1)
    for i, clean in ((1, None), (2, 0.9), (3, None)):
        assert m.epoch(_epoch(i, 2.4, clean)) is None
    assert "at chance" in m.epoch(_epoch(4, 2.4, 0.9))


def test_monitor_collapse_with_a_falling_loss_is_not_divergence():
    m = DivergenceMonitor(10, epochs=4)
    m.batch_loss(3.0, 1)
    for i in range(1, 5):
        m.epoch(_epoch(i, 2.31, 0.9 if i in (m.check_at, 4) else None))
    assert m.reason is None


def test_monitor_resumed_keeps_its_start():
    first = DivergenceMonitor(10, epochs=4)
    first.batch_loss(2.0, 1)
    row = _epoch(1, 2.1)
    first.epoch(row)
    assert row["start_loss"] == 2.0
    resumed = DivergenceMonitor(10, epochs=4, history=[row])
    assert resumed.start == 2.0
    assert resumed.epoch(_epoch(2, 250.0)) is not None


def test_a_huge_learning_rate_is_recorded_as_diverged_with_one_warning(tmp_path, capsys):
    config = make_config("digits", "st", "quick", lr=1e6, epochs=3, eval_bound="none", eval_steps=2, width=16)
    record = train(config, out=tmp_path, progress=False)
    assert record["diverged"] is True and "over 100x its start" in record["divergence"]
    assert len(record["history"]) == 1                     # it stopped at the first epoch
    assert record["metrics"]["robust_error"] is None and record["num_classes"] == 10
    assert record_health(record) == "diverged"
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "diverged" in warnings[0]


def test_a_healthy_run_is_recorded_as_such(tmp_path):
    config = make_config("digits", "st", "quick", epochs=2, eval_bound="none", eval_steps=2, width=16)
    record = train(config, out=tmp_path, progress=False)
    assert record["diverged"] is False and record["divergence"] is None
    assert 0 <= record["metrics"]["train_error"] < health.chance_error(10)
    assert record_health(record) is None
