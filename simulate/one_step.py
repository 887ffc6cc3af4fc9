"""The theorem's one gradient step in finite samples, against theory's population values.

    python -m simulate.one_step --eps 0.8 --gamma 1 --d 1000 --n 100000
    python -m simulate.one_step --eps 0.8 --n 1000,10000,100000      # the gap as n grows

Samples the linear distribution (docs/PAPER.md §2) with `realdata.data`, initialises the
one-neuron model a·ReLU(θᵀx) + b (`realdata.models.one_neuron`, θ ~ N(0, I), θ₁ > 0),
and takes one gradient step on θ₁ for

* AT   — the exact worst case along e₁ (`realdata.attacks.line_search`), then the
         gradient of the logistic loss at that point (Danskin);
* COAP — the bounds engine's robust loss (`realdata.bounds.robust_loss`, method "coap")
         under the `Directions` threat {β e₁ : |β| ≤ ε},

both by torch autograd.  Each finite-sample quantity is compared with `theory.population`
(exact quadrature) and the difference is reported in standard errors.  Standard errors
of the mean gradients come from batch means (the sample is drawn in `batches` equal
chunks, which also keeps memory at one chunk); those of the risks after the step follow
by the delta method through theory's closed-form R_ε, and the empirical robust error of
the stepped models on fresh points (exact line search) is checked against R_ε binomially.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from realdata.attacks import line_search
from realdata.bounds import robust_loss
from realdata.cli import Parser
from realdata.data import load_dataset
from realdata.errors import UserError, parse_eps, parse_list, parse_seeds, run_main
from realdata.models import one_neuron
from realdata.synthetic import OneStepConfig
from realdata.threats import Directions, basis_direction
from simulate.runner import add_common_arguments, format_table, print_json, run_configs
from theory import population

KIND = "one_step"
DTYPE = torch.float64  # the COAP−AT gradient gap is ~1e-3 of the gradients; float32 would blur it


def initial_theta(config: OneStepConfig) -> torch.Tensor:
    """θ ~ N(0, I_d) from the seed with θ₁ > 0, optionally pinned to (θ₁, r)."""
    gen = torch.Generator().manual_seed(config.seed)
    theta = torch.randn(config.d, generator=gen, dtype=DTYPE)
    theta[0] = theta[0].abs() if config.theta1 is None else config.theta1
    if config.ratio is not None:
        theta[1:] *= config.ratio * theta[0] / theta[1:].norm()
    return theta


def _chunk_sizes(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def _sample(config: OneStepConfig, size: int, stream: int, index: int):
    """`size` points of the linear distribution, independent across (seed, n, stream, index)."""
    # load_dataset seeds its generator from one integer; mixing the parts keeps every chunk of
    # every run on its own stream (and test draws apart from the training sample).
    seed = int(np.random.SeedSequence([config.seed, config.n, stream, index]).generate_state(1)[0])
    data = load_dataset("linear", seed=seed, d=config.d, gamma=config.gamma, sigma=config.sigma, n=size, n_test=1)
    return data.x_train.to(DTYPE), data.y_train


def _theta1_grad(loss: torch.Tensor, model) -> float:
    return torch.autograd.grad(loss, model[0].weight)[0][0, 0].item()


def chunk_gradient(method: str, model, x, y, threat) -> float:
    """Mean ∂L/∂θ₁ over a chunk for AT (exact worst case) or COAP (dual bound)."""
    if method == "at":
        x_adv = line_search(model, x, y, threat)
        # two logits differing by f: cross-entropy is the logistic loss log(1 + e^{−y f(x')})
        return _theta1_grad(F.cross_entropy(model(x_adv), y), model)
    loss, _ = robust_loss(model, x, y, threat, method)
    return _theta1_grad(loss, model)


def chunk_gradients(model, x, y, threat) -> tuple[float, float]:
    """Mean ∂L/∂θ₁ over a chunk for AT and COAP at the same model (paired)."""
    return chunk_gradient("at", model, x, y, threat), chunk_gradient("coap", model, x, y, threat)


def _weighted_mean_se(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Mean of chunk means weighted by chunk size, and its batch-means standard error."""
    mean = float(np.sum(weights * values))
    m = len(values)
    se = math.sqrt(np.sum(weights ** 2 * (values - mean) ** 2) * m / (m - 1))
    return mean, se


def _z(diff: float, se: float):
    # With SE 0 (e.g. the two stepped models never disagree on the test points) the
    # comparison is unresolved at this sample size, not infinitely significant.
    return diff / se if se > 0 else None


def _risk_slope(theta1: float, s: float, config: OneStepConfig) -> float:
    """dR_ε/dθ₁ by a central difference of theory's cancellation-free risk difference."""
    h = 1e-5 * max(abs(theta1), 1.0)
    diff = population.risk_difference(theta1 + h, theta1 - h, s, config.eps, config.gamma, config.a, config.b)
    return float(diff) / (2 * h)


def robust_errors(models: dict, config: OneStepConfig, threat, progress: bool) -> dict:
    """Exact robust 0-1 error of each model on `n_test` fresh points (paired: same points)."""
    wrong = {name: [] for name in models}
    sizes = _chunk_sizes(config.n_test, max(1, math.ceil(config.n_test / 5000)))
    for i, size in enumerate(tqdm(sizes, desc="robust error", disable=not progress, leave=False, file=sys.stderr)):
        x, y = _sample(config, size, stream=1, index=i)
        for name, model in models.items():
            with torch.no_grad():
                x_adv = line_search(model, x, y, threat)
                wrong[name].append((model(x_adv).argmax(1) != y).to(DTYPE))
    return {name: torch.cat(v).numpy() for name, v in wrong.items()}


def _stepped_models(theta, stepped: dict, config: OneStepConfig) -> dict:
    models = {}
    for method, t in stepped.items():
        th = theta.clone()
        th[0] = t
        models[method] = one_neuron(th, config.a, config.b)
    return models


def _empirical_risks(metrics: dict, theta, stepped: dict, config: OneStepConfig, threat, progress: bool) -> None:
    """The stepped models' exact robust error on fresh points, against R_ε binomially (into `metrics`)."""
    wrong = robust_errors(_stepped_models(theta, stepped, config), config, threat, progress)
    for method, errs in wrong.items():
        p = float(errs.mean())
        r = metrics[f"risk_{method}"]
        metrics[f"empirical_risk_{method}"] = p
        metrics[f"empirical_risk_{method}_se"] = math.sqrt(r * (1 - r) / len(errs))
        metrics[f"empirical_risk_{method}_z"] = _z(p - r, metrics[f"empirical_risk_{method}_se"])
    diff = wrong["coap"] - wrong["at"]
    metrics["empirical_risk_gap"] = float(diff.mean())
    metrics["empirical_risk_gap_se"] = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0


def _grad_slope(method: str, theta1: float, s: float, config: OneStepConfig) -> float:
    """dE[g]/dθ₁ by a central difference of theory's quadrature (for propagating SEs through steps)."""
    h = 1e-4 * max(abs(theta1), 1.0)
    args = (s, config.eps, config.gamma, config.a, config.b)
    return (population.expected_gradient(method, theta1 + h, *args)
            - population.expected_gradient(method, theta1 - h, *args)) / (2 * h)


def run_many(config: OneStepConfig, progress: bool = True):
    """T finite-sample GD steps for AT and COAP (a fresh sample of n points each step, the same points for
    both), against `theory.dynamics` (exact population GD from the same θ₁).

    The SE of θ̂₁ after each step propagates to first order: e_{t+1} = (1 − η·g'(θ_t))·e_t − η·ξ_t, with ξ_t
    the batch-means SE of step t's mean gradient and g' the population gradient's slope."""
    from theory.dynamics import trajectories
    theta = initial_theta(config)
    theta1 = float(theta[0])
    norm_rest = float(theta[1:].norm())
    ratio, s = norm_rest / theta1, config.sigma * norm_rest
    threat = Directions(config.eps, basis_direction(0, (config.d,), dtype=DTYPE))
    methods = ("at", "coap")
    pop = trajectories(config.eps, ratio, config.steps, config.gamma, config.sigma, config.a, config.b, theta1,
                       config.eta, objectives=methods)
    sizes = _chunk_sizes(config.n, min(config.batches, config.n))
    weights = np.asarray(sizes, dtype=float) / config.n
    current = {m: theta1 for m in methods}
    var = {m: 0.0 for m in methods}
    history = []
    for t in tqdm(range(config.steps), desc=f"GD steps n={config.n}", disable=not progress, leave=False,
                  file=sys.stderr):
        grads = np.empty((len(sizes), len(methods)))
        models = _stepped_models(theta, current, config)
        for i, size in enumerate(sizes):
            x, y = _sample(config, size, stream=0, index=t * len(sizes) + i)
            grads[i] = [chunk_gradient(m, models[m], x, y, threat) for m in methods]
        row = {"step": t + 1}
        for k, m in enumerate(methods):
            mean, se = _weighted_mean_se(grads[:, k], weights)
            factor = 1 - config.eta * _grad_slope(m, float(pop[m].theta1[t]), s, config)
            var[m] = factor ** 2 * var[m] + (config.eta * se) ** 2
            current[m] -= config.eta * mean
            row.update({f"grad_{m}": mean, f"grad_{m}_se": se, f"grad_{m}_pop": float(pop[m].grad[t]),
                        f"theta1_{m}": current[m], f"theta1_{m}_se": math.sqrt(var[m]),
                        f"theta1_{m}_pop": float(pop[m].theta1[t + 1])})
            row[f"theta1_{m}_z"] = _z(current[m] - row[f"theta1_{m}_pop"], row[f"theta1_{m}_se"])
        history.append(row)

    metrics = {"theta1_init": theta1, "ratio": ratio, "s": s, "risk_init": float(pop["at"].risk[0]),
               "steps": config.steps}

    def compare(key, finite, se, popv):
        metrics.update({key: finite, f"{key}_se": se, f"{key}_pop": popv, f"{key}_z": _z(finite - popv, se)})

    risk_se = {}
    for m in methods:
        compare(f"theta1_{m}", current[m], math.sqrt(var[m]), float(pop[m].theta1[-1]))
        risk_se[m] = abs(_risk_slope(float(pop[m].theta1[-1]), s, config)) * math.sqrt(var[m])
        compare(f"risk_{m}", float(population.robust_risk(current[m], s, config.eps, config.gamma, config.a,
                                                           config.b)), risk_se[m], float(pop[m].risk[-1]))
    # The two trajectories see the same points but sit at different θ₁: their correlation is unknown, so the
    # gap's SE takes the worst case (perfectly anti-correlated), a conservative bound.
    gap = float(population.risk_difference(current["coap"], current["at"], s, config.eps, config.gamma, config.a,
                                           config.b))
    pop_gap = float(population.risk_difference(pop["coap"].theta1[-1], pop["at"].theta1[-1], s, config.eps,
                                               config.gamma, config.a, config.b))
    compare("risk_gap", gap, risk_se["at"] + risk_se["coap"], pop_gap)
    if config.n_test:
        _empirical_risks(metrics, theta, current, config, threat, progress)
    metrics["coap_worse"] = gap > 0
    metrics["coap_worse_pop"] = pop_gap > 0
    return metrics, history, {"theta": {"theta1": theta1, "norm_rest": norm_rest}}


def run_one(config: OneStepConfig, progress: bool = True, checkpoint=None):
    """One seed at one n → (metrics, history, extra) for the record; T > 1 steps go to `run_many`.

    `checkpoint` is unused: a step takes seconds, there is nothing worth resuming."""
    if config.steps > 1:
        return run_many(config, progress)
    theta = initial_theta(config)
    theta1 = float(theta[0])
    norm_rest = float(theta[1:].norm())
    ratio, s = norm_rest / theta1, config.sigma * norm_rest
    threat = Directions(config.eps, basis_direction(0, (config.d,), dtype=DTYPE))
    model = one_neuron(theta, config.a, config.b)

    sizes = _chunk_sizes(config.n, min(config.batches, config.n))
    grads = np.empty((len(sizes), 2))
    for i, size in enumerate(tqdm(sizes, desc=f"gradients n={config.n}", disable=not progress, leave=False,
                                  file=sys.stderr)):
        x, y = _sample(config, size, stream=0, index=i)
        grads[i] = chunk_gradients(model, x, y, threat)
    weights = np.asarray(sizes, dtype=float) / config.n

    pop = population.one_step(config.eps, ratio, config.gamma, config.sigma, config.a, config.b, theta1, config.eta)
    pop_gap = float(population.expected_gradients(theta1, s, config.eps, config.gamma, config.a, config.b).gap)
    metrics = {"theta1_init": theta1, "ratio": ratio, "s": s, "risk_init": float(pop.risk_init),
               "in_theorem_region": bool(pop.in_theorem_region),
               "threshold_ratio": None if np.isnan(pop.threshold_ratio) else float(pop.threshold_ratio)}

    def compare(key, finite, se, popv):
        metrics.update({key: finite, f"{key}_se": se, f"{key}_pop": popv, f"{key}_z": _z(finite - popv, se)})

    g = {}
    for col, method, popv in ((0, "at", float(pop.grad_at)), (1, "coap", float(pop.grad_relaxed))):
        g[method] = _weighted_mean_se(grads[:, col], weights)
        compare(f"grad_{method}", *g[method], popv)
    gap, gap_se = _weighted_mean_se(grads[:, 1] - grads[:, 0], weights)  # paired: same points
    compare("grad_gap", gap, gap_se, pop_gap)

    stepped, pop_values = {}, pop.as_dict()
    for method in ("at", "coap"):
        t_hat = theta1 - config.eta * g[method][0]
        t_pop = float(pop_values[f"theta1_{method}"])
        stepped[method] = t_hat
        se = abs(_risk_slope(t_pop, s, config)) * config.eta * g[method][1]
        compare(f"theta1_{method}", t_hat, config.eta * g[method][1], t_pop)
        compare(f"risk_{method}", float(population.robust_risk(t_hat, s, config.eps, config.gamma, config.a, config.b)),
                se, float(pop_values[f"risk_{method}"]))
    # R(θ̂_COAP) − R(θ̂_AT) without cancellation; its SE through the paired gradient gap
    risk_gap = float(population.risk_difference(stepped["coap"], stepped["at"], s, config.eps, config.gamma,
                                                config.a, config.b))
    risk_gap_se = abs(_risk_slope(float(pop.theta1_at), s, config)) * config.eta * gap_se
    compare("risk_gap", risk_gap, risk_gap_se, float(pop.risk_gap))

    if config.n_test:
        _empirical_risks(metrics, theta, stepped, config, threat, progress)
    metrics["coap_worse"] = risk_gap > 0
    metrics["coap_worse_pop"] = float(pop.risk_gap) > 0
    return metrics, [], {"theta": {"theta1": theta1, "norm_rest": norm_rest}}


def run_one_step(configs, out="results", force: bool = False, progress: bool = True, jobs: int = 1) -> list[dict]:
    """Run each `OneStepConfig` (one record per seed and n); finished records are reused."""
    return run_configs(KIND, configs, run_one, out=out, force=force, progress=progress, jobs=jobs)


# --------------------------------------------------------------------------- report

_ROWS = (("grad_at", "E[∂L/∂θ₁] AT"), ("grad_coap", "E[∂L/∂θ₁] COAP"), ("grad_gap", "gradient gap COAP−AT"),
         ("theta1_at", "θ₁ after step, AT"), ("theta1_coap", "θ₁ after step, COAP"),
         ("risk_at", "R_ε(θ_AT)"), ("risk_coap", "R_ε(θ_COAP)"), ("risk_gap", "R_ε gap COAP−AT"))


_ROWS_MANY = (("theta1_at", "θ₁ after T steps, AT"), ("theta1_coap", "θ₁ after T steps, COAP"),
              ("risk_at", "R_ε(θ_AT)"), ("risk_coap", "R_ε(θ_COAP)"),
              ("risk_gap", "R_ε gap COAP−AT (SE conservative)"))


def _empirical_rows(c: dict, m: dict) -> list[dict]:
    if "empirical_risk_at" not in m:
        return []
    rows = [{"q": f"robust error on {c['n_test']} fresh pts, {method.upper()} vs R_ε",
             "f": m[f"empirical_risk_{method}"], "se": m[f"empirical_risk_{method}_se"],
             "p": m[f"risk_{method}"], "z": m[f"empirical_risk_{method}_z"]} for method in ("at", "coap")]
    rows.append({"q": "  its gap COAP−AT (paired) vs R_ε gap", "f": m["empirical_risk_gap"],
                 "se": m["empirical_risk_gap_se"], "p": m["risk_gap"],
                 "z": _z(m["empirical_risk_gap"] - m["risk_gap"], m["empirical_risk_gap_se"])})
    return rows


_COMPARISON = [("q", "quantity", "{}"), ("f", "finite sample", "{:.6g}"), ("se", "SE", "{:.2g}"),
               ("p", "population", "{:.6g}"), ("z", "diff/SE", "{:+.2f}")]


def report_many(record: dict) -> str:
    """T steps: the trajectories of θ₁ against theory.dynamics, then the final quantities."""
    c, m = record["config"], record["metrics"]
    head = (f"{c['steps']} GD steps  eps={c['eps']:g} gamma={c['gamma']:g} d={c['d']} n={c['n']} per step "
            f"seed={c['seed']}: θ₁={m['theta1_init']:.4g}, r={m['ratio']:.4g}, R_ε(init)={m['risk_init']:.6f}")
    steps = format_table(
        [{"t": h["step"], **{f"{k}{m_}": h[f"theta1_{m_}{suffix}"] for m_ in ("at", "coap")
                             for k, suffix in (("f", ""), ("p", "_pop"), ("z", "_z"))}} for h in record["history"]],
        [("t", "step", "{}"), ("fat", "θ₁ AT", "{:.6g}"), ("pat", "population", "{:.6g}"), ("zat", "z", "{:+.2f}"),
         ("fcoap", "θ₁ COAP", "{:.6g}"), ("pcoap", "population", "{:.6g}"), ("zcoap", "z", "{:+.2f}")])
    rows = [{"q": label, "f": m[k], "se": m[f"{k}_se"], "p": m[f"{k}_pop"], "z": m[f"{k}_z"]} for k, label in _ROWS_MANY]
    table = format_table(rows + _empirical_rows(c, m), _COMPARISON)
    verdict = (f"after {c['steps']} steps COAP's robust risk is {'above' if m['coap_worse'] else 'not above'} AT's "
               f"(gap {m['risk_gap']:+.3g} ± {m['risk_gap_se']:.2g}); population: {m['risk_gap_pop']:+.3g}.")
    return "\n".join([head, steps, table, verdict])


def report(record: dict) -> str:
    c, m = record["config"], record["metrics"]
    if c.get("steps", 1) > 1:
        return report_many(record)
    region = "inside" if m["in_theorem_region"] else "outside"
    threshold = "none for this ε" if m["threshold_ratio"] is None else f"r > {m['threshold_ratio']:.3g}"
    head = (f"one step  eps={c['eps']:g} gamma={c['gamma']:g} d={c['d']} n={c['n']} seed={c['seed']}: "
            f"θ₁={m['theta1_init']:.4g}, r={m['ratio']:.4g}, R_ε(init)={m['risk_init']:.6f}; {region} the theorem's "
            f"region (2γ/3 < ε < γ and {threshold})")
    rows = [{"q": label, "f": m[k], "se": m[f"{k}_se"], "p": m[f"{k}_pop"], "z": m[f"{k}_z"]} for k, label in _ROWS]
    table = format_table(rows + _empirical_rows(c, m), _COMPARISON)
    verdict = (f"COAP's robust risk after the step is {'above' if m['coap_worse'] else 'not above'} AT's at this n "
               f"(gap {m['risk_gap']:+.3g} ± {m['risk_gap_se']:.2g}); population: "
               f"{'above' if m['coap_worse_pop'] else 'not above'} (gap {m['risk_gap_pop']:+.3g}).")
    return "\n".join([head, table, verdict])


def gap_table(records: list[dict]) -> str:
    # Many-step records have no single gradient gap: their column stays empty (NaN).
    rows = [{"n": r["config"]["n"], "seed": r["seed"], "g": r["metrics"].get("grad_gap", math.nan),
             "gse": r["metrics"].get("grad_gap_se", math.nan),
             "gap": r["metrics"]["risk_gap"], "se": r["metrics"]["risk_gap_se"], "pop": r["metrics"]["risk_gap_pop"],
             "sig": _z(r["metrics"]["risk_gap"], r["metrics"]["risk_gap_se"])}
            for r in records]
    return format_table(rows, [("n", "n", "{}"), ("seed", "seed", "{}"), ("g", "grad gap", "{:+.4g}"),
                               ("gse", "SE", "{:.2g}"), ("gap", "R gap COAP−AT", "{:+.4g}"), ("se", "SE", "{:.2g}"),
                               ("sig", "gap/SE", "{:+.1f}"), ("pop", "population gap", "{:+.4g}")])


# --------------------------------------------------------------------------- command line

def build_parser() -> Parser:
    d = OneStepConfig()
    p = Parser(prog="python -m simulate.one_step",
               description="One gradient step of AT and COAP on the theorem's one-neuron model with a finite sample of "
                           "the linear distribution (docs/PAPER.md §2), compared with theory's population values. Prints the "
                           "gradients, θ₁ after the step and the robust risks R_ε, each with its standard error and its "
                           "difference from the population value in standard errors; with several --n, how the COAP−AT "
                           "gap behaves as n grows. Values marked INFERRED are not given by the sources.")
    p.add_argument("--eps", default=str(d.eps), help=f"budget ε along e₁, e.g. 0.8 or 4/5 (default {d.eps})")
    p.add_argument("--gamma", type=float, default=d.gamma, help=f"signal strength γ: x₁ = γy (default {d.gamma})")
    p.add_argument("--d", type=int, default=d.d, help=f"input dimension (default {d.d})")
    p.add_argument("--n", default=str(d.n), help=f"sample size, or a comma-separated list to see the gap as n grows "
                                                  f"(default {d.n})")
    p.add_argument("--sigma", type=float, default=d.sigma, help=f"noise std of x_2..x_d (INFERRED default {d.sigma})")
    p.add_argument("--a", type=float, default=d.a, help=f"fixed output weight a > 0 (INFERRED default {d.a})")
    p.add_argument("--b", type=float, default=d.b, help=f"fixed output bias b < 0 (INFERRED default {d.b})")
    p.add_argument("--eta", type=float, default=d.eta, help=f"step size η of both objectives (INFERRED default {d.eta})")
    p.add_argument("--theta1", type=float, default=None,
                   help="θ₁ at initialisation (default: |N(0,1)| drawn from the seed)")
    p.add_argument("--ratio", type=float, default=None,
                   help="rescale θ_2..θ_d so that r = ‖θ_{2:d}‖/θ₁ takes this value (default: as drawn, r ≈ √d); "
                        "the theorem needs r above a threshold that depends on ε/γ")
    p.add_argument("--batches", type=int, default=d.batches,
                   help=f"the sample is drawn in this many chunks; their means give the standard errors "
                        f"(default {d.batches})")
    p.add_argument("--n-test", type=int, default=d.n_test,
                   help=f"fresh points on which the stepped models' exact robust error (line search) is checked "
                        f"against R_ε; 0 skips it (default {d.n_test})")
    p.add_argument("--steps", type=int, default=d.steps,
                   help=f"GD steps T on θ₁, each on a fresh sample of n points, compared step by step with theory's "
                        f"exact population GD (theory.dynamics) (default {d.steps})")
    add_common_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def count(text):
        try:
            return int(float(text)) if float(text) == int(float(text)) else None
        except ValueError:
            return None

    ns = parse_list(args.n, count)
    if any(n is None or n < 2 for n in ns):
        raise UserError(f"--n takes sample sizes of at least 2, e.g. 1000,10000, got {args.n!r}.")
    base = OneStepConfig(n=ns[0], eps=parse_eps(args.eps), gamma=args.gamma, d=args.d, sigma=args.sigma, a=args.a, b=args.b, eta=args.eta,
                         theta1=args.theta1, ratio=args.ratio, batches=args.batches, n_test=args.n_test,
                         steps=args.steps)
    configs = [replace(base, n=n, seed=seed) for seed in parse_seeds(args.seeds) for n in ns]
    records = run_one_step(configs, out=args.out, force=args.force, progress=not args.quiet, jobs=args.jobs)
    if args.json:
        print_json(records)
        return 0
    for record in records:
        print(report(record), end="\n\n")
    if len(records) > 1:
        print("COAP − AT robust-risk gap after one step, by n:")
        print(gap_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
