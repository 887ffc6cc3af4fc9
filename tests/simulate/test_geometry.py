"""The 2023 geometry study: its grid, and the table of AT's and COAP's errors and gaps per choice."""
from dataclasses import asdict

from simulate import geometry


def test_study_grid_covers_each_choice_in_both_settings():
    configs = geometry.study_configs((1.0, 30.0), (50, 500), seeds=(0,), epochs=3)
    assert len(configs) == 2 * 2 * 2 * 2 and {c.epochs for c in configs} == {3}
    assert {(c.norm, c.k, c.eps) for c in configs} == {("l2", None, 4.0), ("directions", 10, 5.0)}
    assert {c.r0 for c in configs} == {1.0, 30.0} and {c.batch_size for c in configs} == {50, 500}
    assert all(c.margin == 20.0 and c.d == 10 and c.n == 500 for c in configs)


def test_rows_average_seeds_and_give_coap_minus_at_gaps():
    records = []
    for config in geometry.study_configs((1.0,), (50,), seeds=(0, 1)):
        rob = {"at": 0.1, "coap": 0.5}[config.method] + 0.1 * config.seed
        records.append({"config": asdict(config), "metrics": {"standard_error": 0.02, "robust_error": rob}})
    rows = geometry.study_rows(records)
    assert [r["setting"] for r in rows] == ["k=10 eps=5", "l2 eps=4"]
    for row in rows:
        assert row["seeds"] == 2 and abs(row["coap_rob"] - 55.0) < 1e-9 and abs(row["gap_rob"] - 40.0) < 1e-9
        assert row["gap_std"] == 0.0
    assert "gap rob" in geometry.table(records)


def test_flags_reach_the_configs():
    args = geometry.build_parser().parse_args(["--r0", "5,50", "--batch-sizes", "500", "--lrs", "0.1"])
    assert geometry.parse_numbers(args.r0, "--r0") == (5.0, 50.0) and args.lrs == "0.1"
