"""Host-device synchronisations per training step: this checkout against a reference revision, in one run.

    python -m benchmarks.host_syncs [--methods at,coap,crown-ibp] [--reference REV] [--images 100]
        [--batch-size 25] [--json]

On a GPU every read of a device value on the host (``.item()``, ``.tolist()``, ``.cpu()``,
``bool(t)``, ``int(t)``, ``float(t)``, ``nonzero``, indexing with a boolean mask) waits for the
queued kernels to finish, so each one stalls the pipeline.  torch counts real synchronisations
only on CUDA; here every such call is counted through a `TorchFunctionMode` while
`realdata.train.fit` trains one epoch of the digits data on the CPU, which counts the same
calls a GPU would wait on (calls by `realdata` code only; see `SyncCounter`).

The reference (default: the commit before the GPU-path work) is extracted with ``git
archive`` and measured by the same harness in a subprocess; both counts are printed side by
side per method, with their ratio.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

REPO = Path(__file__).resolve().parents[1]
#: main just before the GPU path's host-sync work (realdata.train's one sync per step)
REFERENCE = "c63d024"
_PACKAGE = f"{os.sep}realdata{os.sep}"
SYNCS = {"item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__int__", "__float__", "__index__"}


class SyncCounter(TorchFunctionMode):
    """Counts the tensor calls made by the toolkit's own code (`realdata/`) that read a tensor's
    value on the host.  torch's own calls are left out: they read host-side tensors by design
    (an optimiser's step counters live on the CPU even when training on a GPU)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCS or (name in ("__getitem__", "__setitem__") and _bool_index(args[1])):
            self.count += _PACKAGE in sys._getframe(1).f_code.co_filename
        return func(*args, **(kwargs or {}))


def _bool_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def measure(methods, images: int, batch_size: int) -> dict:
    """{method: host syncs per training step} for one epoch of `fit` with this import path's code."""
    from realdata.data import load_dataset
    from realdata.models import build_model
    from realdata.recipes import make_config
    from realdata.train import fit

    dataset = load_dataset("digits", train_size=images, test_size=10, seed=0)
    counts = {}
    for method in methods:
        config = make_config("digits", method, eps=0.3, epochs=1, batch_size=batch_size, width=32, depth=1,
                             warmup_epochs=0.0, ramp_epochs=0.0)
        model = build_model("mlp", dataset, seed=0, width=32)
        with SyncCounter() as counter:
            fit(config, dataset, model, progress=False)
        counts[method] = counter.count / -(-images // batch_size)
    return counts


def _reference_counts(rev: str, methods, images: int, batch_size: int) -> dict:
    """The same measurement on the code of revision `rev` (its realdata package only)."""
    archive = subprocess.run(["git", "archive", rev, "realdata"], cwd=REPO, capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        tarfile.open(fileobj=BytesIO(archive)).extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": tmp + os.pathsep + str(REPO)}
        code = ("import json, sys; from benchmarks.host_syncs import measure; "
                f"print(json.dumps(measure({list(methods)!r}, {images}, {batch_size})))")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                             cwd=tmp)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from realdata.cli import Parser, positive_int
    from realdata.errors import UserError, parse_list, run_main  # noqa: F401 (run_main: see __main__)

    parser = Parser(prog="python -m benchmarks.host_syncs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="at,coap,crown-ibp", help="training methods, comma-separated")
    parser.add_argument("--reference", default=REFERENCE, help=f"git revision to compare with (default {REFERENCE})")
    parser.add_argument("--images", type=positive_int, default=100, help="training images (one epoch)")
    parser.add_argument("--batch-size", type=positive_int, default=25, help="batch size (default 25)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    from realdata.methods import check_method

    methods = [check_method(m) for m in parse_list(args.methods, str)]
    try:
        before = _reference_counts(args.reference, methods, args.images, args.batch_size)
    except subprocess.CalledProcessError as err:
        raise UserError(f"could not measure revision {args.reference} ({(err.stderr or b'')[-300:]!r}); "
                        "pass --reference with a revision of this repository.") from None
    after = measure(methods, args.images, args.batch_size)
    if args.json:
        print(json.dumps({"before": before, "after": after, "reference": args.reference}))
        return 0
    print(f"host syncs per training step (digits mlp, batch {args.batch_size}, {args.images} images, one epoch)")
    print(f"{'method':<10} {'before':>8} {'after':>8} {'after/before':>13}")
    for method in methods:
        print(f"{method:<10} {before[method]:8.1f} {after[method]:8.1f} {after[method] / before[method]:13.3f}")
    return 0


if __name__ == "__main__":
    from realdata.errors import run_main

    sys.exit(run_main(main))
