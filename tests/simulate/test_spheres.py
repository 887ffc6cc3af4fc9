"""Concentric spheres end to end on a tiny configuration, with per-epoch history and the k threat."""

from realdata.synthetic import quick_configs
from simulate.spheres import SpheresConfig, run_spheres, table

TINY = SpheresConfig(preset="quick", d=5, n=20, n_test=200, epochs=3, eval_steps=5, eval_restarts=2,
                     lrs=(0.1, 0.01), per_epoch_test=50, eps=0.3)


def test_tiny_runs_write_records_with_per_epoch_history(tmp_path):
    configs = [SpheresConfig(**{**TINY.__dict__, "method": m, "per_epoch": True}) for m in ("st", "at", "coap")]
    records = run_spheres(configs, out=tmp_path, progress=False)
    assert len(list(tmp_path.glob("spheres-quick-*.json"))) == 3
    for record in records:
        c, m = record["config"], record["metrics"]
        assert record["kind"] == "spheres" and {"preset", "method", "norm", "eps", "k", "margin", "seed"} <= set(c)
        assert m["attack"] == "apgd" and m["bound"] == "coap"
        # the record carries the resolved training config: the preset's values at the chosen lr
        assert record["train_config"]["epochs"] == TINY.epochs and record["train_config"]["lr"] == m["lr"]
        assert record["train_config"]["data_params"]["d"] == TINY.d == record["data"]["d"]
        assert m["standard_error"] <= m["robust_error"] <= m["certified_error"]
        assert 0 <= m["unstable_fraction"] <= 1 and -1 <= m["alignment"] <= 1
        assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
        assert all(-1 <= h["alignment"] <= 1 and 0 <= h["robust_error"] <= 1 and 0 <= h["unstable_fraction"] <= 1
                   for h in record["history"])
    assert "COAP" in table(records) and "cos(δ,signal)" in table(records)


def test_signal_aligned_threat_is_evaluated_exactly(tmp_path):
    config = SpheresConfig(**{**TINY.__dict__, "norm": "directions", "k": 2, "method": "coap"})
    (record,) = run_spheres(config, out=tmp_path, progress=False)
    assert record["metrics"]["attack"] == "line-search" and record["config"]["k"] == 2


def test_quick_configs_cover_methods_and_budgets():
    configs = quick_configs("spheres")
    assert {c.method for c in configs} == {"st", "at", "coap"} and len({c.eps for c in configs}) >= 3
    assert all(c.per_epoch and c.preset == "quick" for c in configs)
