"""The papers' learning-rate rule: interpolate first, then the lowest test robust error."""
import math

import pytest

from simulate.lr_rule import eligible, lowest_robust_error, select_lr


def cand(lr, train, robust, standard=0.1):
    return {"lr": lr, "train_error": train, "robust_error": robust, "standard_error": standard}


def test_interpolation_beats_lower_robust_error():
    chosen = select_lr([cand(0.1, 0.02, 0.10), cand(0.01, 0.0, 0.30), cand(0.001, 0.0, 0.25)])
    assert chosen["lr"] == 0.001 and chosen["interpolated"] is True


def test_no_interpolation_keeps_lowest_training_error_and_says_so():
    pool, interpolated = eligible([cand(0.1, 0.1, 0.2), cand(0.01, 0.04, 0.5), cand(0.001, 0.04, 0.4)])
    assert not interpolated and [c["lr"] for c in pool] == [0.01, 0.001]
    assert select_lr([cand(0.1, 0.1, 0.2), cand(0.01, 0.04, 0.5), cand(0.001, 0.04, 0.4)])["lr"] == 0.001


def test_diverged_runs_are_never_eligible():
    pool, interpolated = eligible([cand(0.1, math.nan, 0.0), cand(0.01, 0.3, 0.9)])
    assert [c["lr"] for c in pool] == [0.01] and not interpolated


def test_ties_go_to_lower_standard_error_then_larger_lr():
    assert lowest_robust_error([cand(0.1, 0, 0.2, 0.05), cand(0.01, 0, 0.2, 0.01)])["lr"] == 0.01
    assert lowest_robust_error([cand(0.01, 0, 0.2, 0.05), cand(0.1, 0, 0.2, 0.05)])["lr"] == 0.1


def test_empty_grid_is_an_error():
    with pytest.raises(ValueError):
        select_lr([])
