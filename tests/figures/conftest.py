"""Small result records in the documented format, written the way the experiments write them.

The numbers are drawn from a seeded generator with a method-dependent slope in ε, so a
figure's summary can be checked against the records it was drawn from.
"""
from __future__ import annotations

import numpy as np
import pytest

from realdata.results import make_record, record_path, write_json_atomic

SLOPE = {"st": 0.05, "at": 0.1, "coap": 0.3, "crown-ibp": 0.25, "ibp": 0.35, "sabr": 0.2}


def _error(rng, method, eps, base):
    return float(np.clip(base + SLOPE[method] * eps + rng.uniform(0, 0.02), 0, 1))


def write(out, kind, name, config, metrics, history=None):
    rec = make_record(kind, name, config, seed=config.get("seed", 0), metrics=metrics, history=history,
                      wall_time_s=0.1)
    return write_json_atomic(record_path(out, name, config), rec)


def write_train(out, datasets=("digits", "cifar10"), methods=("at", "coap", "crown-ibp"), seeds=(0, 1)):
    rng = np.random.default_rng(0)
    for dataset in datasets:
        eps_grid = (0.5, 1.0, 2.0) if dataset != "cifar10" else (9 / 255, 36 / 255, 108 / 255)
        for method in methods:
            for eps in eps_grid:
                for seed in seeds:
                    scale = eps * (255 / 36 if dataset == "cifar10" else 1)
                    std = _error(rng, method, scale, 0.05)
                    rob = _error(rng, method, scale, 0.2)
                    cfg = {"dataset": dataset, "method": method, "norm": "l2", "eps": eps, "seed": seed,
                           "epochs": 2}
                    write(out, "train", f"{dataset}-{method}", cfg, {
                        "standard_error": std, "robust_error": rob, "certified_error": min(1.0, rob + 0.1),
                        "acc_disc": min(1.0, 2 * std), "robust_acc_disc": min(1.0, 1.5 * rob),
                        "unstable_fraction": 0.1 * scale})


def write_spheres(out, methods=("st", "at", "coap"), eps_grid=(0.5, 1.0, 2.0), seeds=(0, 1), epochs=4):
    rng = np.random.default_rng(1)
    for method in methods:
        for eps in eps_grid:
            for seed in seeds:
                history = [{"epoch": e, "alignment": float(0.2 + 0.1 * e * (method != "st")),
                            "robust_error": _error(rng, method, eps, 0.5 / (e + 1)),
                            "unstable_fraction": 0.05 * e} for e in range(1, epochs + 1)]
                cfg = {"preset": "quick", "method": method, "norm": "l2", "eps": eps, "k": None,
                       "margin": None, "seed": seed}
                write(out, "spheres", f"spheres-{method}", cfg, {
                    "standard_error": _error(rng, method, eps, 0.0), "robust_error": _error(rng, method, eps, 0.1),
                    "unstable_fraction": 0.1 * eps * (method == "coap")}, history)


def write_linear(out, methods=("st", "at", "coap"), sizes=(50, 1000), eps_grid=(3.0, 4.0, 5.0), seeds=(0, 1)):
    rng = np.random.default_rng(2)
    for n in sizes:
        for method in methods:
            for eps in eps_grid:
                for seed in seeds:
                    cfg = {"n": n, "method": method, "eps": eps, "seed": seed, "gamma": 6.0, "d": 1000}
                    write(out, "linear", f"linear-{method}", cfg, {
                        "standard_error": _error(rng, method, eps / 6, 0.0),
                        "robust_error": _error(rng, method, eps / 6, 0.1)})


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    """A full results directory, written once; tests that damage records copy it first."""
    out = tmp_path_factory.mktemp("records") / "results"
    write_train(out)
    write_spheres(out)
    write_linear(out)
    return out


@pytest.fixture
def writers():
    """The record writers, for tests that build their own results directory."""
    return {"train": write_train, "spheres": write_spheres, "linear": write_linear, "write": write}
