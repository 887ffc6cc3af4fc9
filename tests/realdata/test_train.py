"""The training run: recipes, resume after a stop, skip/force, checkpoints, CLI errors."""
import json

import pytest
import torch

from realdata.errors import UserError, run_main
from realdata.recipes import INFERRED, RECIPES, TrainConfig, make_config
from realdata.train import fit, main, paths, train

TINY = dict(train_size=120, test_size=40, epochs=3, batch_size=40, width=16, depth=1, eval_steps=5)


def _tiny(method="coap", **changes):
    return make_config("digits", method, eps=0.3, **{**TINY, **changes})


def _cli(tmp_path, *extra):
    return ["--dataset", "digits", "--method", "st", "--eps", "0.3", "--out", str(tmp_path), "--quiet",
            "--train-size", "120", "--test-size", "40", "--epochs", "2", "--width", "16", "--depth", "1",
            "--eval-steps", "3", *extra]


def _without_times(history):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


@pytest.mark.parametrize("method", ["at", "coap"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, method):
    # coap with random projections and at with random starts: every random stream must resume
    config = _tiny(method, proj=10 if method == "coap" else None, ramp_epochs=2.0)
    whole = train(config, out=tmp_path / "whole", progress=False)
    assert train(config, out=tmp_path / "parts", progress=False, stop_after=1) is None
    _, ckpt = paths(config, tmp_path / "parts")
    assert ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] == 1
    resumed = train(config, out=tmp_path / "parts", progress=False)
    assert resumed["resumed_from"] == 1 and whole["resumed_from"] is None
    assert resumed["metrics"] == whole["metrics"]
    assert _without_times(resumed["history"]) == _without_times(whole["history"])
    assert not ckpt.exists()  # the record supersedes the checkpoint


def test_record_has_the_keys_figures_read(tmp_path):
    record = train(_tiny("crown-ibp", warmup_epochs=1.0, ramp_epochs=1.0), out=tmp_path, progress=False)
    assert record["kind"] == "train"
    for key in ("dataset", "method", "norm", "eps", "seed"):
        assert key in record["config"]
    m = record["metrics"]
    assert {"standard_error", "robust_error", "certified_error", "acc_disc", "robust_acc_disc",
            "per_class_standard_error", "unstable_fraction"} <= set(m)
    assert m["standard_error"] <= m["robust_error"] <= m["certified_error"]
    assert m["bound"] == "crown-ibp" and len(record["history"]) == 3
    eps = [row["eps"] for row in record["history"]]
    betas = [row["beta"] for row in record["history"]]
    assert eps[0] == 0.0 and eps[-1] == pytest.approx(0.3)  # warm-up, then the ramp reaches the budget
    assert betas[-1] == 0.0 and betas[0] == 1.0


def test_callback_rows_land_in_the_history_and_survive_a_resume(tmp_path):
    import numpy as np

    from realdata.data import load_dataset
    from realdata.models import build_model

    data = load_dataset("digits", train_size=60, test_size=10)
    config = _tiny("st", epochs=3)
    seen = []

    def callback(epoch, model, row):
        seen.append(epoch)
        return {"probe": np.float64(epoch * 10), "curve": torch.arange(2) * epoch}

    def run(**kw):
        model = build_model("mlp", data, seed=0, width=8, depth=1)
        return fit(config, data, model, progress=False, callback=callback, checkpoint=tmp_path / "c.ckpt", **kw)

    assert not run(stop_after=2).completed
    result = run()
    assert seen == [1, 2, 3] and result.resumed_from == 2
    assert [row["probe"] for row in result.history] == [10.0, 20.0, 30.0]
    assert result.history[2]["curve"] == [0, 3]


def test_paper_recipes_hold_the_papers_values():
    coap = RECIPES["paper"][("cifar10", "coap")]
    assert (coap.optimizer, coap.lr, coap.momentum, coap.weight_decay, coap.batch_size, coap.epochs) == \
        ("sgd", 0.05, 0.9, 5e-4, 50, 60)
    assert (coap.eps_start, coap.ramp_epochs, coap.grad_clip, coap.proj, coap.lr_gamma) == (0.001, 20, 1.0, 50, 0.5)
    at = RECIPES["paper"][("cifar10", "at")]
    assert (at.attack, at.attack_steps, at.lr_milestones, at.epochs, at.batch_size) == ("apgd", 10, (80, 120), 150, 128)
    crown = RECIPES["paper"][("mnist", "crown-ibp")]
    assert (crown.optimizer, crown.lr, crown.batch_size, crown.epochs, crown.ramp_epochs) == ("adam", 5e-4, 256, 200, 50)
    assert (crown.beta_start, crown.beta_end) == (1.0, 0.0)
    assert "warmup_epochs" in INFERRED[("paper", "cifar10", "crown-ibp")]
    assert "weight_decay" in INFERRED[("paper", "cifar10", "at")]
    assert RECIPES["paper"][("spheres", "at")].momentum == 0.95


@pytest.mark.parametrize("change, message", [
    (dict(method="trades"), "choose one of st, at"),
    (dict(optimizer="rmsprop"), "sgd, adam"),
    (dict(epochs=0), "positive integer"),
    (dict(lr_milestones=(5, 3)), "increasing"),
    (dict(beta_end=2.0), r"\[0, 1\]"),
    (dict(norm="directions"), "--k"),
])
def test_config_refuses_bad_values(change, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**{"dataset": "digits", "method": "st", "eps": 0.1, **change})


def test_make_config_lists_choices():
    with pytest.raises(UserError, match="choose one of"):
        make_config("svhn", "st")
    with pytest.raises(UserError, match="unknown configuration field"):
        make_config("digits", "st", learning_rate=0.1)
    assert make_config("digits", "at", epochs=7, lr=None).epochs == 7  # None keeps the recipe's value


def test_another_arch_drops_the_recipes_width_and_depth():
    recipe = make_config("digits", "st")
    assert (recipe.arch, recipe.width, recipe.depth) == ("mlp", 100, 2)
    cnn = make_config("digits", "st", arch="cnn7")  # an mlp's 100 units is no channel factor
    assert (cnn.width, cnn.depth) == (None, None)
    assert make_config("digits", "st", arch="cnn7", width=0.25).width == 0.25
    assert make_config("digits", "st", arch="mlp", depth=1).width == 100  # same arch: recipe's width kept


# --------------------------------------------------------------------------- command line

def test_cli_writes_skips_and_forces(tmp_path, capsys):
    assert run_main(main, _cli(tmp_path, "--json")) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"]["method"] == "st"
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 1 and not list(tmp_path.glob("*.ckpt"))
    assert run_main(main, _cli(tmp_path)) == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped") and json.loads(files[0].read_text())["created"] == record["created"]
    assert run_main(main, _cli(tmp_path, "--force", "--json")) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == record["metrics"]  # the same seed gives the same numbers
    assert json.loads(files[0].read_text())["wall_time_s"] == again["wall_time_s"]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "svhn", "--method", "st"], "unknown dataset 'svhn'; choose one of cifar10"),
    (["--dataset", "digits", "--method", "madry"], "unknown training method 'madry'; choose one of st, at"),
    (["--dataset", "digits", "--method", "st", "--eps", "3/x"], "cannot read the budget"),
    (["--dataset", "digits", "--method", "st", "--eps", "-1"], "non-negative"),
    (["--dataset", "cifar10", "--method", "st", "--data-dir", "/nonexistent/cifar"], "--data-dir /nonexistent/cifar does not exist"),
    (["--dataset", "digits", "--method", "st", "--batch-size", "ten"], "expected an integer"),
    (["--dataset", "digits", "--method", "st", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_cli_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, args, message):
    assert run_main(main, args + ["--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_corrupt_checkpoint_is_refused_and_the_record_kept(tmp_path, capsys):
    config = make_config("digits", "st", eps=0.3, train_size=120, test_size=40, epochs=2, width=16, depth=1,
                         eval_steps=3)
    record_file, ckpt = paths(config, tmp_path)
    ckpt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert run_main(main, _cli(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "corrupt" in err and "delete" in err and len(err.strip().splitlines()) == 1
    assert ckpt.read_bytes().startswith(b"PK\x03\x04 this")  # refused, not replaced
    ckpt.unlink()
    assert run_main(main, _cli(tmp_path)) == 0
    kept = record_file.read_text()
    ckpt.write_bytes(b"garbage")
    assert run_main(main, _cli(tmp_path, "--force")) == 2  # even a forced rerun will not start over it
    assert record_file.read_text() == kept


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    config = _tiny("st", epochs=2)
    train(config, out=tmp_path, progress=False, stop_after=1)
    _, ckpt = paths(config, tmp_path)
    other = _tiny("st", epochs=2, lr=0.5)
    ckpt.rename(paths(other, tmp_path)[1])
    with pytest.raises(UserError, match="another configuration"):
        train(other, out=tmp_path, progress=False)


def test_equal_configs_have_one_hash_however_typed():
    from realdata.results import config_hash

    a = make_config("digits", "st", eps=1, width=16.0, lr_milestones=[2, 3])
    b = make_config("digits", "st", eps=1.0, width=16, lr_milestones=(2, 3))
    assert config_hash(a) == config_hash(b) and a == b


@pytest.mark.parametrize("attack", ["apgd", "pgd"])
def test_training_checks_its_inputs_once_per_run_not_per_attack(monkeypatch, attack):
    """Each check reads device values on the host (a GPU sync); fit checks the training set once."""
    import realdata.attacks as attacks
    from realdata.data import load_dataset
    from realdata.models import build_model

    calls = []
    check = attacks.check_attack_input
    monkeypatch.setattr(attacks, "check_attack_input", lambda *a, **k: calls.append(1) or check(*a, **k))
    config = _tiny("at", attack=attack, epochs=1, attack_steps=2)
    data = load_dataset("digits", train_size=80, test_size=10, seed=0)
    fit(config, data, build_model("mlp", data, seed=0, width=16), progress=False)
    assert calls == []  # fit's own check is the one before the loop (imported into realdata.train)
