"""The poster's findings are computed from its records: headings and summary lines follow the
counts (and say so when the records disagree with the paper), and a collapsed or diverged
run is drawn hollow, named in one warning and left out of every summary."""
import matplotlib.pyplot as plt
import pytest

from figures import claims, error_grid, linear, spheres
from figures.records import health_warning, load_results, series

EPS = (0.1, 0.25, 0.5)


def train_records(out, write, robust, collapsed=(), diverged=()):
    """digits records whose robust error is `robust[method](eps)`; cells in `collapsed` end at
    chance (clean training error 0.9 of ten classes), cells in `diverged` are flagged."""
    for method, error in robust.items():
        for eps in EPS:
            for seed in (0, 1):
                cell = (method, eps, seed)
                cfg = {"dataset": "digits", "method": method, "norm": "l2", "eps": eps, "seed": seed}
                rob = 0.9 if cell in collapsed else error(eps) + 0.01 * seed
                metrics = {"standard_error": rob / 2, "robust_error": rob, "train_error": 0.9 if cell in collapsed else 0.05,
                           "acc_disc": 0.1, "robust_acc_disc": 0.2}
                path = write(out, "train", f"digits-{method}", cfg, metrics)
                extra = {"num_classes": 10, "diverged": cell in diverged,
                         "divergence": "non-finite loss (nan) in epoch 2" if cell in diverged else None}
                _amend(path, extra)
    return load_results(out).of("train")


def _amend(path, extra):
    import json
    record = json.loads(path.read_text())
    record.update(extra)
    path.write_text(json.dumps(record))


def test_records_that_agree_with_the_paper_say_so_with_counts(tmp_path, writers):
    records = train_records(tmp_path, writers["write"], {"at": lambda e: 0.1 + e / 4, "coap": lambda e: 0.1 + e})
    assert error_grid.heading(records) == ("Certified training falls behind AT: COAP robust error above AT's in "
                                           "3 of 3 cells, the gap growing with ε in 1 of 1 curves")
    lines = error_grid.claim_lines(records)
    assert lines == ["COAP's robust error is above AT's in 3 of 3 cells (Digits (8×8)); "
                     "its gap to AT grows with ε in 1 of 1 curves"]


def test_records_where_at_is_worse_produce_a_heading_that_says_so(tmp_path, writers):
    records = train_records(tmp_path, writers["write"], {"at": lambda e: 0.3 + e, "coap": lambda e: 0.2 + e / 2,
                                                         "crown-ibp": lambda e: 0.25 + e / 2})
    heading = error_grid.heading(records)
    assert heading.startswith("These records disagree with the paper: COAP/CROWN-IBP robust error above AT's in "
                              "0 of 6 cells")
    assert "falls behind" not in heading
    lines = error_grid.claim_lines(records)
    assert "COAP's robust error is above AT's in 0 of 3 cells (Digits (8×8))" in lines[0]
    assert lines[-1].startswith("The paper says certified training has higher robust error than AT; in these "
                                "records (Digits (8×8)) that holds in only 0 of 6")


def test_mixed_records_are_called_mixed(tmp_path, writers):
    # COAP above AT only at the largest budget: 1 of 3 cells → fewer than half → disagree;
    # CROWN-IBP above everywhere: pooled 4 of 6 → mixed
    records = train_records(tmp_path, writers["write"], {"at": lambda e: 0.3, "coap": lambda e: 0.2 + 0.7 * (e > 0.3),
                                                         "crown-ibp": lambda e: 0.5})
    assert error_grid.heading(records).startswith("Mixed evidence: COAP/CROWN-IBP robust error above AT's in 4 of 6")
    assert claims.verdict(claims.tallies(records, error_grid.CELL_KEYS, "robust_error")) == "mixed"


def test_no_comparison_keeps_a_neutral_heading(tmp_path, writers):
    records = train_records(tmp_path, writers["write"], {"coap": lambda e: 0.2})
    assert error_grid.heading(records).startswith("Errors and fairness against ε (no cell compares")
    assert error_grid.claim_lines(records) == []


def test_collapsed_and_diverged_runs_are_hollow_named_and_left_out(tmp_path, writers):
    records = train_records(tmp_path, writers["write"], {"at": lambda e: 0.1, "coap": lambda e: 0.2},
                            collapsed={("at", 0.5, 0)}, diverged={("coap", 0.1, 1)})
    # left out of the means: AT at ε=0.5 is seed 1's 0.11 alone, not the mean with 0.9
    at = {p.x: p for p in series(records, ("method",), "eps", "robust_error")[("at",)]}
    assert at[0.5].mean == pytest.approx(0.11) and at[0.5].n == 1 and at[0.25].n == 2
    # and out of every count: the cells still compare on the healthy seeds
    assert error_grid.claim_lines(records)[0].startswith("COAP's robust error is above AT's in 3 of 3 cells")
    warning = health_warning(records)
    assert warning == ("2 runs collapsed or diverged and are left out of every mean and summary line: "
                       "digits AT ℓ2 ε=0.5 seed 0 (collapsed); digits COAP ℓ2 ε=0.1 seed 1 (diverged).")
    fig = plt.figure(figsize=(8, 8))
    summary = error_grid.draw_grid(fig, records)
    assert warning in summary
    hollow = [line for ax in fig.axes for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    # one hollow AT and one hollow COAP marker in each of the four metric rows
    assert len(hollow) == 2 * len(error_grid.METRICS)
    assert sorted({tuple(line.get_xdata()) for line in hollow}) == [(0.1,), (0.5,)]
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any(text.startswith("hollow: collapsed or diverged run") for text in legend_texts)
    plt.close(fig)


def test_healthy_records_have_no_hollow_marker_or_warning(tmp_path, writers):
    records = train_records(tmp_path, writers["write"], {"at": lambda e: 0.1, "coap": lambda e: 0.2})
    assert health_warning(records) is None
    fig = plt.figure(figsize=(8, 8))
    summary = error_grid.draw_grid(fig, records)
    assert not any("collapsed" in line for line in summary)
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    assert not any("hollow" in t.get_text() for legend in fig.legends for t in legend.get_texts())
    plt.close(fig)


def test_an_unstable_fraction_equal_for_every_method_is_called_out(tmp_path, writers):
    writers["spheres"](tmp_path, methods=("st", "at", "coap"), eps_grid=(0.5,), seeds=(0,), epochs=2)
    records = load_results(tmp_path).of("spheres")
    for rec in records:
        rec["metrics"]["unstable_fraction"] = 0.797
    lines = spheres.claim_lines(records)
    assert "spheres: the unstable fraction is the same for AT, COAP, ST at ε=0.5 (0.797): it does not separate " \
           "the methods here" in lines


def test_spheres_and_linear_headings_are_counted(results_dir):
    results = load_results(results_dir)
    sph, _ = spheres.main_setting(results.of("spheres"))
    # the fixture's COAP slope in ε is three times AT's: above in every cell
    assert spheres.heading(sph).startswith("Spheres: certified training falls behind AT: COAP robust error above "
                                           "AT's in 3 of 3 cells")
    assert linear.heading(results.of("linear")).startswith(
        "The theorem's data, two-layer net: certified training falls behind AT: COAP robust error above AT's in "
        "6 of 6 cells")
