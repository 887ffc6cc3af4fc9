"""The learning-rate search: who gets evaluated, and with which evaluation."""
from dataclasses import replace

from realdata.data import load_dataset
from realdata.train import build_threat
from simulate.lr_rule import eligible
from realdata.recipes import from_synthetic
from simulate.spheres import SpheresConfig
from simulate.training import lr_search

TINY = SpheresConfig(preset="quick", d=5, n=20, n_test=100, epochs=2, eval_steps=5, eval_restarts=1,
                     lrs=(0.1, 0.01, 0.001), method="st", eps=0.3)


def _setup():
    base = from_synthetic(TINY)
    dataset = load_dataset("spheres", seed=0, **TINY.data_params())
    return base, dataset, build_threat(base, dataset)


def test_ranking_runs_on_eligible_rates_only_and_final_evaluation_once():
    base, dataset, threat = _setup()
    calls = {"rank": 0, "final": 0}

    def rank(model):
        calls["rank"] += 1
        return {"standard_error": 0.0, "robust_error": 0.5 - 0.1 * calls["rank"]}  # later candidates look better

    def final(model):
        calls["final"] += 1
        return {"standard_error": 0.0, "robust_error": 0.2}

    choice = lr_search(base, TINY.lrs, dataset, threat, final, select_fn=rank, progress=False)
    pool, _ = eligible(choice.candidates)
    assert calls["final"] == 1 and choice.metrics["robust_error"] == 0.2
    assert calls["rank"] == (len(pool) if len(pool) > 1 else 0)
    assert sum(c["chosen"] for c in choice.candidates) == 1
    chosen = next(c for c in choice.candidates if c["chosen"])
    assert chosen in pool and choice.run.lr == chosen["lr"]
    if len(pool) > 1:
        assert chosen["lr"] == pool[-1]["lr"]  # the last ranked had the lowest robust error
        assert all("rank_robust_error" in c for c in pool)


def test_without_a_ranking_function_the_final_evaluation_ranks_and_is_reused():
    base, dataset, threat = _setup()
    calls = []

    def final(model):
        calls.append(model)
        return {"standard_error": 0.0, "robust_error": 0.3}

    choice = lr_search(base, TINY.lrs, dataset, threat, final, progress=False)
    pool, _ = eligible(choice.candidates)
    assert len(calls) == max(1, len(pool) if len(pool) > 1 else 1)
    assert choice.run.model in calls


def test_per_epoch_history_comes_from_a_refit_of_the_chosen_rate():
    base, dataset, threat = _setup()
    seen = []

    def callback(epoch, model, entry):
        seen.append(entry["lr"])
        return {"probe": epoch}

    choice = lr_search(replace(base, epochs=2), TINY.lrs, dataset, threat,
                       lambda m: {"standard_error": 0.0, "robust_error": 0.0}, callback=callback, progress=False)
    assert seen == [choice.run.lr] * 2  # only the chosen rate pays for the per-epoch measurement
    assert [h["probe"] for h in choice.run.history] == [1, 2]
