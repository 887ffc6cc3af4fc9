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


def _fake_search(monkeypatch, outcomes, select=False):
    """lr_search over fake runs: outcomes[lr] = (train_error, robust_error, standard_error).
    Returns (choice, the rates trained, the models ranked)."""
    import itertools
    import math
    import simulate.training as training
    from torch import nn

    trained, ranked = [], []
    models = {lr: nn.Linear(1, 1) for lr in outcomes}
    by_model = {id(m): lr for lr, m in models.items()}

    def train(config, *args, **kwargs):
        trained.append(config.lr)
        error = outcomes[config.lr][0]
        if math.isnan(error):
            return training.Run(lr=config.lr, model=None, divergence="loss is nan")
        return training.Run(lr=config.lr, model=models[config.lr], train_error=error)

    def errors(model):
        lr = by_model[id(model)]
        return {"robust_error": outcomes[lr][1], "standard_error": outcomes[lr][2]}

    def evaluate(model):
        ranked.append(by_model[id(model)])
        return errors(model)

    monkeypatch.setattr(training, "train_at_lr", train)
    base, dataset, threat = _setup()
    calls = itertools.count()
    final = (lambda m: {"final": next(calls), **errors(m)}) if select else evaluate
    choice = lr_search(base, tuple(outcomes), dataset, threat, final, select_fn=evaluate if select else None,
                       progress=False)
    return choice, trained, ranked


def test_a_perfect_run_ends_the_search_and_smaller_rates_are_not_trained(monkeypatch):
    choice, trained, ranked = _fake_search(monkeypatch, {0.1: (0.0, 0.0, 0.0), 0.01: (0.0, 0.0, 0.0),
                                                         0.001: (0.0, 0.0, 0.0)})
    assert trained == [0.1] and ranked == [0.1]  # ranked once, and that evaluation is the final one
    assert choice.run.lr == 0.1 and choice.metrics == {"robust_error": 0.0, "standard_error": 0.0}
    assert [c["lr"] for c in choice.candidates] == [0.1, 0.01, 0.001]
    assert [c["chosen"] for c in choice.candidates] == [True, False, False]
    assert all("not trained: lr 0.1" in c["skipped"] and "train_error" not in c for c in choice.candidates[1:])

    choice, trained, _ = _fake_search(monkeypatch, {0.1: (0.0, 0.2, 0.0), 0.01: (0.0, 0.0, 0.0),
                                                    0.001: (0.0, 0.0, 0.0)})
    assert trained == [0.1, 0.01] and choice.run.lr == 0.01 and "skipped" in choice.candidates[2]

    # zero robust error with some standard error is not the best possible rank: the search goes on
    _, trained, _ = _fake_search(monkeypatch, {0.1: (0.0, 0.0, 0.1), 0.01: (0.0, 0.0, 0.0), 0.001: (0.0, 0.0, 0.0)})
    assert trained == [0.1, 0.01]


def test_the_grids_order_is_kept_and_rates_train_from_the_largest(monkeypatch):
    choice, trained, _ = _fake_search(monkeypatch, {0.001: (0.0, 0.0, 0.0), 0.1: (0.0, 0.0, 0.0),
                                                    0.01: (0.0, 0.0, 0.0)})
    assert trained == [0.1] and [c["lr"] for c in choice.candidates] == [0.001, 0.1, 0.01]
    assert choice.run.lr == 0.1


def test_early_stopping_chooses_what_the_rule_chooses_on_every_fully_evaluated_grid(monkeypatch):
    import itertools
    from simulate.lr_rule import select_lr

    values = [(t, r, s) for t in (0.0, 0.1, float("nan")) for r in (0.0, 0.2) for s in (0.0, 0.1)]
    for select in (False, True):
        for combo in itertools.product(values, repeat=3):
            outcomes = dict(zip((0.1, 0.01, 0.001), combo))
            if all(o[0] != o[0] for o in combo):
                continue  # every rate diverged: an error, tested elsewhere
            full = [{"lr": lr, "train_error": t, "robust_error": r, "standard_error": s}
                    for lr, (t, r, s) in outcomes.items()]
            choice, trained, ranked = _fake_search(monkeypatch, outcomes, select=select)
            assert choice.run.lr == select_lr(full)["lr"], (outcomes, select)
            assert len(ranked) == len(set(ranked))  # no candidate is ranked twice
            skipped = [c["lr"] for c in choice.candidates if "skipped" in c]
            assert sorted(trained + skipped, reverse=True) == [0.1, 0.01, 0.001]
            assert choice.interpolated == select_lr(full)["interpolated"]
