"""One torchrun worker of `test_gloo.py`: every multi-process scenario in one process group.

    torchrun --nproc_per_node 2 tests/realdata/gloo_worker.py OUT SERVED_ARCHIVE

Each rank writes OUT/rank<r>.json with what it saw; the test asserts on both files.  The
group's timeout is 2 minutes, so a scenario that makes the ranks disagree fails the test
instead of hanging it.
"""
import datetime
import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import realdata.data as data_mod
import realdata.evaluate as evaluate_mod
import realdata.train as train_mod
from realdata import distributed
from realdata.errors import UserError
from realdata.models import build_model
from realdata.recipes import make_config
from realdata.threats import L2


def download_then_train(ctx, out: Path, served: Path) -> dict:
    """Rank 0 alone downloads into the shared folder; then AT with uneven shares keeps the
    augmentation identical on both ranks while each rank attacks from its own stream."""
    fetched, augmented, streams = [], [], []
    data_mod._fetch_url = lambda url, dest: fetched.append(url) or shutil.copyfile(served, dest)
    config = make_config("cifar10", "at", eps=0.1, arch="mlp", width=8, train_size=15, test_size=4, epochs=2,
                         batch_size=7, attack_steps=2, eval_steps=2, data_params={"download": True})
    try:  # a download that fails its check (the official md5 is not the test archive's) stops every rank
        train_mod.load_run_data(config, out / "shared-data", ctx)
        refused = None
    except UserError as err:
        refused = str(err)
    data_mod.CIFAR10_MD5 = hashlib.md5(served.read_bytes()).hexdigest()
    dataset = train_mod.load_run_data(config, out / "shared-data", ctx)

    augment = train_mod.augment_batch
    train_mod.augment_batch = lambda x, g: augmented.append(float((x2 := augment(x, g)).sum())) or x2
    loss = train_mod.training_loss
    train_mod.training_loss = lambda *a, **k: streams.append(k["generator"].initial_seed()) or loss(*a, **k)
    try:
        model = build_model("mlp", dataset, seed=0, width=8)
        train_mod.fit(config, dataset, model, progress=False, context=ctx)
    finally:
        train_mod.augment_batch, train_mod.training_loss = augment, loss
    return {"refused": refused, "fetched": len(fetched), "train_labels": dataset.y_train.tolist(), "augmented": augmented,
            "streams": sorted(set(streams))}


def resume_without_a_shared_folder(ctx, out: Path) -> dict:
    """Each rank has its own output folder: only rank 0's holds the checkpoint and the record."""
    config = make_config("digits", "st", eps=0.3, train_size=60, test_size=20, epochs=2, batch_size=25, width=8,
                         depth=1, eval_steps=2)
    mine = out / f"own-{ctx.rank}"
    stopped = train_mod.train(config, out=mine, device="cpu", progress=False, stop_after=1)
    files_after_stop = sorted(p.suffix for p in mine.glob("*"))
    resumed = train_mod.train(config, out=mine, device="cpu", progress=False)
    loads = []
    load = train_mod.load_dataset
    train_mod.load_dataset = lambda *a, **k: loads.append(1) or load(*a, **k)
    try:
        skipped = train_mod.train(config, out=mine, device="cpu", progress=False)
    finally:
        train_mod.load_dataset = load
    return {"stopped": stopped, "files_after_stop": files_after_stop,
            "resumed_from": resumed and resumed["resumed_from"], "epochs": resumed and len(resumed["history"]),
            "skipped_is_record": skipped is not None and skipped["config_hash"] == resumed["config_hash"],
            "loads_when_skipping": len(loads)}


def sharded_evaluation(ctx) -> dict:
    """Both ranks evaluate their share; the gathered result equals one process's, point for point."""
    dataset = data_mod.load_dataset("digits", test_size=45, train_size=10, seed=0)
    model = build_model("mlp", dataset, seed=1, width=8)
    seen = []
    batch = evaluate_mod._evaluate_batch
    evaluate_mod._evaluate_batch = lambda m, x, *a: seen.append(len(x)) or batch(m, x, *a)
    options = dict(attack="apgd", bound="crown-ibp", steps=3, restarts=1, attack_seed=5, batch_size=8,
                   box=dataset.box, progress=False)
    try:
        sharded = evaluate_mod.evaluate(model, dataset.x_test, dataset.y_test, L2(0.3), context=ctx, **options)
        seen_sharded = sum(seen)
        alone = evaluate_mod.evaluate(model, dataset.x_test, dataset.y_test, L2(0.3), **options)
    finally:
        evaluate_mod._evaluate_batch = batch
    return {"points": seen_sharded, "equal": sharded == alone, "n": sharded["n"]}


def gradients(ctx) -> dict:
    """A parameter no share reaches stays None everywhere; one reached on rank 1 only arrives on both."""
    torch.manual_seed(0)
    a, b, unused = nn.Linear(3, 1), nn.Linear(3, 1), nn.Linear(3, 1)
    x = torch.ones(2, 3)
    loss = a(x).sum() + (b(x).sum() if ctx.rank == 1 else 0)
    loss.backward()
    params = [*a.parameters(), *b.parameters(), *unused.parameters()]
    flag = distributed.sum_gradients(params, ctx, torch.tensor(float(ctx.rank == 1)))
    return {"none": [p.grad is None for p in params], "b_grad": b.weight.grad.tolist(), "flag": float(flag)}


def gloo_threads() -> list[str] | None:
    """The names of this process's gloo threads (None where /proc is missing)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # a thread that ended while we looked
            pass
    return sorted(name for name in names if "gloo" in name)


def main(out: str, served: str) -> None:
    distributed.init_group("gloo", timeout=datetime.timedelta(minutes=2))
    ctx = distributed.setup("cpu")
    out, results = Path(out), {}
    results["download"] = download_then_train(ctx, out, Path(served))
    results["resume"] = resume_without_a_shared_folder(ctx, out)
    results["evaluation"] = sharded_evaluation(ctx)
    results["gradients"] = gradients(ctx)
    dist.destroy_process_group()
    # threads left alive here abort the process at interpreter shutdown, now and then
    results["threads_after_destroy"] = gloo_threads()
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
