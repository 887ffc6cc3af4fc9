"""The linear experiment end to end, and the exact line search against theory's robust risk."""
import json
import math
import os
from dataclasses import replace

import pytest
import torch

from realdata.data import load_dataset
from realdata.evaluate import evaluate
from realdata.models import one_neuron
from realdata.threats import Directions, basis_direction
from simulate.linear import LinearConfig, configs_from_args, build_parser, run_linear
from theory.population import robust_risk

TINY = LinearConfig(preset="quick", d=20, n=20, n_test=200, epochs=3, lrs=(0.1, 0.01), eps=4.5)


def test_tiny_runs_end_to_end_and_finished_records_are_skipped(tmp_path):
    configs = [LinearConfig(**{**TINY.__dict__, "method": m}) for m in ("st", "at", "coap")]
    records = run_linear(configs, out=tmp_path, progress=False)
    files = sorted(tmp_path.glob("linear-*.json"))
    assert len(files) == 3 and [r["config"]["method"] for r in records] == ["st", "at", "coap"]
    for record in records:
        assert record["kind"] == "linear"
        assert {"n", "method", "eps", "seed"} <= set(record["config"])
        m = record["metrics"]
        assert m["attack"] == "line-search" and 0 <= m["robust_error"] <= 1
        assert m["standard_error"] <= m["robust_error"] <= m["certified_error"]
        assert m["lr"] in (0.1, 0.01) and len(record["history"]) == 3
        assert sum(c["chosen"] for c in record["lr_search"]) == 1
    stamps = [json.loads(f.read_text())["created"] for f in files]
    again = run_linear(configs, out=tmp_path, progress=False)
    assert [json.loads(f.read_text())["created"] for f in files] == stamps
    assert [r["metrics"] for r in again] == [r["metrics"] for r in records]


def test_exact_line_search_matches_theorys_robust_risk():
    # the theorem's one-neuron model on the linear data: its exact robust error along e₁
    # (realdata's line search through realdata.evaluate) is a binomial draw of R_ε(θ)
    d, gamma, eps, a, b, n = 30, 1.0, 0.8, 1.0, -0.5, 20_000
    theta = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theta[0], theta[1:] = 1.0, theta[1:] * (3.0 / theta[1:].norm())      # θ₁ = 1, r = 3
    data = load_dataset("linear", seed=0, d=d, gamma=gamma, sigma=1.0, n=1, n_test=n)
    model = one_neuron(theta, a, b)
    threat = Directions(eps, basis_direction(0, (d,), dtype=torch.float64))
    out = evaluate(model, data.x_test.double(), data.y_test, threat, attack="line-search", bound=None,
                   batch_size=n, progress=False)
    risk = float(robust_risk(1.0, 3.0, eps, gamma, a, b))
    se = math.sqrt(risk * (1 - risk) / n)
    assert abs(out["robust_error"] - risk) < 4 * se, (out["robust_error"], risk, se)


def test_sweep_uses_the_papers_grids():
    args = build_parser().parse_args(["--sweep", "--n", "50,10000", "--methods", "coap"])
    eps = {(c.n, c.eps) for c in configs_from_args(args)}
    assert {e for n, e in eps if n == 50} == {3.0, 3.5, 4.0, 4.5, 5.0, 5.5}
    assert {e for n, e in eps if n == 10_000} == {4.0, 4.25, 4.5, 4.75, 5.0, 5.25}


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    # n ≥ CHECKPOINT_MIN_N checkpoints every epoch; a run stopped after one epoch is resumed,
    # not restarted, and the checkpoint is gone once the record is written.
    from realdata.results import record_path
    from realdata.train import build_threat, fit
    from realdata.recipes import from_synthetic
    from simulate.training import CHECKPOINT_MIN_N, checkpoint_path

    config = LinearConfig(**{**TINY.__dict__, "n": CHECKPOINT_MIN_N, "d": 5, "n_test": 50, "lrs": (0.1,),
                             "method": "st", "batch_size": 500})
    base = replace(from_synthetic(config), lr=0.1)
    ckpt = checkpoint_path(record_path(tmp_path, config.name, config).with_suffix(""), base, config.n)
    dataset = load_dataset("linear", seed=config.seed, **config.data_params())
    threat = build_threat(base, dataset)
    from realdata.models import build_model
    model = build_model(base.arch, dataset, seed=base.seed, width=base.width, depth=base.depth)
    torch.manual_seed(base.seed)
    first = fit(base, dataset, model, threat=threat, checkpoint=ckpt, progress=False, stop_after=1)
    assert not first.completed and ckpt.exists()
    (record,) = run_linear(config, out=tmp_path, progress=False)
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert record["history"][0]["time_s"] == first.history[0]["time_s"]  # the resumed epoch, not a rerun
    assert not list(tmp_path.glob("*.ckpt"))


def test_st_trains_once_for_all_budgets_and_jobs_give_the_same_records(tmp_path, monkeypatch):
    import simulate.training as training

    configs = [LinearConfig(**{**TINY.__dict__, "method": m, "eps": e}) for e in (3.0, 4.5) for m in ("st", "at")]
    fits = []
    real = training.train_at_lr
    monkeypatch.setattr(training, "train_at_lr", lambda config, *a, **k: fits.append(config.method) or real(config, *a, **k))
    serial = run_linear(configs, out=None, progress=False)
    assert fits.count("st") == len(TINY.lrs) and fits.count("at") == 2 * len(TINY.lrs)  # ST: once per lr
    st = [r for r in serial if r["config"]["method"] == "st"]
    assert st[0]["lr_search"][0]["train_error"] == st[1]["lr_search"][0]["train_error"]
    parallel = run_linear(configs, out=tmp_path, progress=False, jobs=2)
    assert [r["name"] for r in parallel] == [r["name"] for r in serial]
    assert [r["metrics"]["robust_error"] for r in parallel] == [r["metrics"]["robust_error"] for r in serial]
    # each of the 2 workers takes its share of the cores, and the record says how many threads ran
    assert {r["versions"]["threads"] for r in parallel} == {max(1, (os.cpu_count() or 1) // 2)}



@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_diverging_at_every_rate_leaves_the_others_running(tmp_path, jobs):
    from simulate.runner import RunsFailed

    # AT at lr 1e8 diverges at its only rate (loss ~1e17 in epoch 2); ST's runs finish and keep their records
    configs = [LinearConfig(**{**TINY.__dict__, "method": "at", "lrs": (1e8,), "eps": e}) for e in (3.0, 4.5)]
    configs += [LinearConfig(**{**TINY.__dict__, "method": "st", "eps": e}) for e in (3.0, 4.5)]
    with pytest.raises(RunsFailed) as caught:
        run_linear(configs, out=tmp_path, progress=False, jobs=jobs)
    assert len(caught.value.problems) == 2 and all("diverged at every learning rate" in p for p in caught.value.problems)
    assert str(caught.value).startswith("2 of 4 runs did not finish")
    assert sorted(json.loads(p.read_text())["config"]["method"] for p in tmp_path.glob("*.json")) == ["st", "st"]
