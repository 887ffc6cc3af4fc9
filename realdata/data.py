"""Datasets as tensors with one interface: images from files, synthetic data generated.

`load_dataset(name, ...)` returns a `Dataset` whatever the source:

- ``cifar10``: the "python version" batches (a folder, or the official
  ``cifar-10-python.tar.gz``), looked for in ``data_dir``, then ``$CIFAR10_DIR``,
  then the real subset in ``<repo>/../shared/data/cifar10-subset``;
- ``mnist`` / ``fashion-mnist``: the four IDX files, gzipped or not;
- ``tiny-imagenet``: the ``tiny-imagenet-200/`` folder from ``data_dir`` or
  ``$TINYIMAGENET_DIR``, decoded once and cached beside it (`realdata.tiny_imagenet`);
- ``digits``: scikit-learn's bundled 8×8 digits (no files needed);
- ``spheres``: two concentric spheres (docs/PAPER.md §3);
- ``linear``: the theorem's distribution, signal on the first coordinate (docs/PAPER.md §2).

Images live in [0, 1]; normalisation is not applied here but carried as
``mean``/``std`` for the model's `Normalize` layer, so ε is always in pixel space.
Tensors are returned on the CPU; the trainer moves them.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib
import inspect
import io
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .synthetic import LINEAR_PRESETS, SPHERES_PRESETS

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
# Per-channel statistics of the full 50 000-image CIFAR-10 training set.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# The shared subset sits beside the repository (../shared), also in a fresh CI clone.
CIFAR10_SUBSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-subset" / CIFAR10_FOLDER

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_PARTS = ("train-images", "train-labels", "t10k-images", "t10k-labels")

PAD = 4


@dataclass(eq=False)  # tensors have no single truth value, so identity is the only sane equality
class Dataset:
    """Train and test tensors plus what models, attacks and evaluation need to know."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple
    mean: tuple | None = None
    std: tuple | None = None
    box: tuple | None = None
    augment: bool = False
    signal_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    params: dict = field(default_factory=dict)

    def signal(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Unit signal direction per point, pointing toward the decision boundary (None for images)."""
        if self.signal_fn is None:
            return None
        return self.signal_fn(x, y)

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"classes={self.num_classes}, input_shape={self.input_shape})")


# --------------------------------------------------------------------------- helpers

def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent numpy stream per purpose, so train, test and subsets never share draws."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _as_int(name: str, value, minimum: int) -> int:
    try:
        number = int(value)
        exact = float(value) == number
    except (TypeError, ValueError):
        exact = False
    if not exact or number < minimum:
        raise UserError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return number


def _as_float(name: str, value, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "positive" if positive else "non-negative"
        raise UserError(f"{name} must be a finite {kind} number, got {value!r}.")
    return number


def _images(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32) / 255.0)


def _labels(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.int64))


# --------------------------------------------------------------------------- CIFAR-10

_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: a batch file can then never run arbitrary code."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        try:
            return getattr(importlib.import_module(module), name)
        except ImportError:
            # numpy 1.x names numpy 2's `numpy._core` as `numpy.core`, and vice versa.
            other = module.replace("numpy._core", "numpy.core") if "_core" in module else module.replace("numpy.core", "numpy._core")
            return getattr(importlib.import_module(other), name)


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, list]:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # a cut-off or foreign file can fail in many ways inside pickle
        raise UserError(f"the CIFAR-10 batch {where} is truncated or corrupt ({type(err).__name__}); replace it with a fresh copy.") from None
    if not isinstance(batch, dict):
        raise UserError(f"the CIFAR-10 batch {where} is not a python-version batch; point --data-dir at the 'python version' of CIFAR-10.")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or labels is None or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or len(labels) != data.shape[0]:
        raise UserError(f"the CIFAR-10 batch {where} lacks 'data' (N×3072) and matching 'labels'; replace it with a fresh copy.")
    return data, list(labels)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cifar_from_folder(folder: Path) -> dict:
    raw = {}
    for name in CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,):
        path = folder / name
        if not path.is_file():
            raise UserError(f"the CIFAR-10 folder {folder} has no {name}; it needs data_batch_1 … data_batch_5 and test_batch.")
        raw[name] = path.read_bytes()
    return raw


def _cifar_from_archive(archive: Path) -> dict:
    if archive.name == CIFAR10_ARCHIVE and _md5(archive) != CIFAR10_MD5:
        raise UserError(f"{archive} does not have the official md5 {CIFAR10_MD5}; it is damaged or incomplete, download it again.")
    raw = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,):
                    raw[base] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise UserError(f"the archive {archive} is truncated or corrupt ({type(err).__name__}); download it again.") from None
    missing = [n for n in CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,) if n not in raw]
    if missing:
        raise UserError(f"the archive {archive} lacks {', '.join(missing)}; use the official cifar-10-python.tar.gz.")
    return raw


def _cifar_source(path: Path) -> Path | None:
    """The batch folder or archive that `path` names or contains, if any."""
    if path.is_file():
        return path
    for candidate in (path, path / CIFAR10_FOLDER):
        if (candidate / CIFAR10_TRAIN_BATCHES[0]).is_file():
            return candidate
    if (path / CIFAR10_ARCHIVE).is_file():
        return path / CIFAR10_ARCHIVE
    return None


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "certified-defences" / "cifar10"


def _fetch_url(url: str, dest: Path) -> None:
    """Stream `url` into `dest` (kept separate so tests can stand in for the network)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _download_cifar10(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / CIFAR10_ARCHIVE
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    os.close(fd)
    try:
        _fetch_url(CIFAR10_URL, Path(tmp))
        if _md5(Path(tmp)) != CIFAR10_MD5:
            raise UserError(f"the download from {CIFAR10_URL} does not have the official md5 {CIFAR10_MD5}; try again later.")
        os.replace(tmp, archive)  # only a verified archive ever carries the official name
    except OSError as err:
        raise UserError(f"could not download CIFAR-10 from {CIFAR10_URL} ({err}); download it by hand and pass --data-dir.") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    # Unpack the six batches once, so later loads skip decompressing 170 MB; the folder
    # appears by one rename, so a killed run never leaves a half-filled one behind.
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".unpack-"))
    try:
        for name, blob in _cifar_from_archive(archive).items():
            (staging / name).write_bytes(blob)
        os.replace(staging, folder / CIFAR10_FOLDER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / CIFAR10_FOLDER


def _load_cifar10(data_dir=None, download: bool = False):
    if data_dir is not None:
        where, origin = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get("CIFAR10_DIR"):
        where, origin = Path(os.environ["CIFAR10_DIR"]).expanduser(), "CIFAR10_DIR"
    elif download:
        where, origin = _cache_dir(), "the download cache"
    else:
        where, origin = CIFAR10_SUBSET, "the default subset location"
    source = _cifar_source(where)
    if source is None and download:
        source = _download_cifar10(where)
    if source is None:
        raise UserError(
            f"CIFAR-10 was not found at {where} ({origin}); pass --data-dir (or set CIFAR10_DIR) to a folder with "
            f"data_batch_1 … data_batch_5 and test_batch or with {CIFAR10_ARCHIVE}, or add --download.")
    raw = _cifar_from_archive(source) if source.is_file() else _cifar_from_folder(source)
    parts = {name: _read_batch(blob, f"{source}:{name}") for name, blob in raw.items()}
    x_train = np.concatenate([parts[n][0] for n in CIFAR10_TRAIN_BATCHES])
    y_train = sum((parts[n][1] for n in CIFAR10_TRAIN_BATCHES), [])
    x_test, y_test = parts[CIFAR10_TEST_BATCH]
    if max(y_train + y_test) > 9 or min(y_train + y_test) < 0:
        raise UserError(f"the CIFAR-10 labels in {source} fall outside 0…9; replace the files with a fresh copy.")
    return Dataset(
        name="cifar10",
        x_train=_images(x_train.reshape(-1, 3, 32, 32)), y_train=_labels(y_train),
        x_test=_images(x_test.reshape(-1, 3, 32, 32)), y_test=_labels(y_test),
        num_classes=10, input_shape=(3, 32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD, box=(0.0, 1.0),
        augment=True, params={"source": str(source)})


# --------------------------------------------------------------------------- MNIST-format IDX

def read_idx(path) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzipped or not, told apart by its first bytes)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise UserError(f"{path} is a truncated or corrupt gzip file ({err}); replace it with a fresh copy.") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file; point --data-dir at the MNIST-format files.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated (its header is cut off); replace it with a fresh copy.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise UserError(f"{path} holds {len(raw)} bytes but its header promises {expected}; it is truncated or corrupt, replace it.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: Path, part: str) -> Path | None:
    dim = 3 if part.endswith("images") else 1
    # the usual names, torchvision's raw/ layout, and the dotted variant some mirrors use
    for sub in (folder, folder / "raw", folder / "MNIST" / "raw", folder / "FashionMNIST" / "raw"):
        for stem in (f"{part}-idx{dim}-ubyte", f"{part}.idx{dim}-ubyte"):
            for suffix in ("", ".gz"):
                if (sub / (stem + suffix)).is_file():
                    return sub / (stem + suffix)
    return None


def _load_idx_dataset(name: str, data_dir, env: str, default: Path | None):
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
    elif os.environ.get(env):
        folder = Path(os.environ[env]).expanduser()
    elif default is not None:
        folder = default
    else:
        raise UserError(f"{name} needs its IDX files; pass --data-dir (or set {env}) to the folder with "
                        f"train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz].")
    paths = {part: _find_idx(folder, part) for part in IDX_PARTS}
    missing = [part for part, p in paths.items() if p is None]
    if missing:
        hint = " (install the Debian package dataset-fashion-mnist)" if name == "fashion-mnist" and folder == default else ""
        raise UserError(f"{name} files {', '.join(missing)} were not found in {folder}{hint}; pass --data-dir (or set {env}) "
                        f"to the folder with the four MNIST-format IDX files, gzipped or not.")
    arrays = {part: read_idx(p) for part, p in paths.items()}
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"the {name} {split} files in {folder} disagree (images {images.shape}, labels {labels.shape}); replace them.")
    labels = np.concatenate([arrays["train-labels"], arrays["t10k-labels"]])
    if labels.max() > 9:
        raise UserError(f"the {name} labels in {folder} exceed 9; these are not MNIST-format class files.")
    shape = (1,) + arrays["train-images"].shape[1:]
    return Dataset(
        name=name,
        x_train=_images(arrays["train-images"][:, None]), y_train=_labels(arrays["train-labels"]),
        x_test=_images(arrays["t10k-images"][:, None]), y_test=_labels(arrays["t10k-labels"]),
        num_classes=10, input_shape=shape, box=(0.0, 1.0), params={"source": str(folder)})


def _load_mnist(data_dir=None):
    return _load_idx_dataset("mnist", data_dir, "MNIST_DIR", None)


def _load_fashion_mnist(data_dir=None):
    return _load_idx_dataset("fashion-mnist", data_dir, "FASHION_MNIST_DIR", FASHION_MNIST_DIR)


# --------------------------------------------------------------------------- Tiny ImageNet

def _load_tiny_imagenet(data_dir=None):
    from . import tiny_imagenet

    arrays, folder, num_classes = tiny_imagenet.load_arrays(data_dir)
    # bytes until load_dataset has drawn its subsets: the whole set in float32 would take 5 GB
    return Dataset(
        name="tiny-imagenet",
        x_train=torch.from_numpy(arrays["x_train"]), y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]), y_test=torch.from_numpy(arrays["y_test"]),
        num_classes=num_classes, input_shape=(3, 64, 64),
        mean=tiny_imagenet.MEAN, std=tiny_imagenet.STD, box=(0.0, 1.0), augment=True,
        params={"source": str(folder)})


# --------------------------------------------------------------------------- scikit-learn digits

def _load_digits(test_fraction: float = 0.2):
    from sklearn.datasets import load_digits

    test_fraction = _as_float("test_fraction", test_fraction, positive=True)
    if test_fraction >= 1:
        raise UserError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # pixel counts 0…16 → [0, 1]
    # A fixed split (independent of --seed) so every run is scored on the same test images.
    order = _rng(0, "digits-split").permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(
        name="digits",
        x_train=torch.from_numpy(images[train, None]), y_train=_labels(bunch.target[train]),
        x_test=torch.from_numpy(images[test, None]), y_test=_labels(bunch.target[test]),
        num_classes=10, input_shape=(1, 8, 8), box=(0.0, 1.0), params={"test_fraction": test_fraction})


# --------------------------------------------------------------------------- synthetic data

def sphere_signal(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Radial unit direction toward the gap between the shells: outward for the inner class 0, inward for class 1."""
    radial = x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return radial * (1 - 2 * y.to(x.dtype)).unsqueeze(1)


def linear_signal(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−y·e₁ (y = ±1): along the signal coordinate, toward the boundary x₁ = 0."""
    direction = torch.zeros_like(x)
    direction[:, 0] = -(2 * y.to(x.dtype) - 1)
    return direction


def _sample_spheres(rng: np.random.Generator, n: int, d: int, radii) -> tuple[torch.Tensor, torch.Tensor]:
    y = rng.integers(0, 2, size=n)
    z = rng.standard_normal((n, d))
    x = z / np.linalg.norm(z, axis=1, keepdims=True) * np.asarray(radii)[y][:, None]
    return torch.from_numpy(x.astype(np.float32)), _labels(y)


def _make_spheres(seed: int = 0, preset: str = "2022", d=None, r0=None, r1=None, margin=None, n=None, n_test=None):
    """The spheres of `realdata.synthetic.SPHERES_PRESETS[preset]`, any value overridden."""
    if str(preset) not in SPHERES_PRESETS:
        raise UserError(f"unknown spheres preset {preset!r}; choose one of {', '.join(SPHERES_PRESETS)}.")
    base = SPHERES_PRESETS[str(preset)].data_params()
    d = _as_int("d", base["d"] if d is None else d, 1)
    n = _as_int("n", base["n"] if n is None else n, 1)
    n_test = _as_int("n_test", base["n_test"] if n_test is None else n_test, 1)
    r0 = _as_float("r0", base["r0"] if r0 is None else r0, positive=True)
    if margin is not None:
        r1_from_margin = r0 + _as_float("margin", margin, positive=True)
        if r1 is not None and abs(_as_float("r1", r1) - r1_from_margin) > 1e-9 * r1_from_margin:
            raise UserError(f"r1={r1} and margin={margin} disagree (r1 must be r0 + margin); give only one of them.")
        r1 = r1_from_margin
    elif r1 is None:
        r1 = r0 + SPHERES_PRESETS[str(preset)].margin  # the presets fix the margin, not the outer radius
    r1 = _as_float("r1", r1, positive=True)
    if not r0 < r1:
        raise UserError(f"the sphere radii must increase (r0 < r1), got r0={r0} and r1={r1}.")
    x_train, y_train = _sample_spheres(_rng(seed, "spheres-train"), n, d, (r0, r1))
    x_test, y_test = _sample_spheres(_rng(seed, "spheres-test"), n_test, d, (r0, r1))
    return Dataset(
        name="spheres", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        num_classes=2, input_shape=(d,), signal_fn=sphere_signal,
        params=dict(preset=str(preset), d=d, r0=r0, r1=r1, margin=r1 - r0, n=n, n_test=n_test, seed=seed))


def _sample_linear(rng: np.random.Generator, n: int, d: int, gamma: float, sigma: float):
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, d)) * sigma
    x[:, 0] = gamma * (2 * y - 1)
    return torch.from_numpy(x.astype(np.float32)), _labels(y)


def _make_linear(seed: int = 0, d=None, gamma=None, sigma=None, n=None, n_test=None):
    """The linear distribution with `realdata.synthetic.LINEAR_PRESETS["paper"]`'s values unless given."""
    base = LINEAR_PRESETS["paper"].data_params()
    d = _as_int("d", base["d"] if d is None else d, 1)
    n = _as_int("n", base["n"] if n is None else n, 1)
    n_test = _as_int("n_test", base["n_test"] if n_test is None else n_test, 1)
    gamma = _as_float("gamma", base["gamma"] if gamma is None else gamma, positive=True)
    sigma = _as_float("sigma", base["sigma"] if sigma is None else sigma)
    x_train, y_train = _sample_linear(_rng(seed, "linear-train"), n, d, gamma, sigma)
    x_test, y_test = _sample_linear(_rng(seed, "linear-test"), n_test, d, gamma, sigma)
    return Dataset(
        name="linear", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        num_classes=2, input_shape=(d,), signal_fn=linear_signal,
        params=dict(d=d, gamma=gamma, sigma=sigma, n=n, n_test=n_test, seed=seed))


# --------------------------------------------------------------------------- entry point

_LOADERS = {
    "cifar10": _load_cifar10,
    "mnist": _load_mnist,
    "fashion-mnist": _load_fashion_mnist,
    "tiny-imagenet": _load_tiny_imagenet,
    "digits": _load_digits,
    "spheres": _make_spheres,
    "linear": _make_linear,
}

#: The dataset registry's names: every choice list and help text derives from `_LOADERS`.
DATASETS = tuple(_LOADERS)


def _subset(x: torch.Tensor, y: torch.Tensor, size, seed: int, what: str, name: str):
    if size is None:
        return x, y
    size = _as_int(f"{what}_size", size, 1)
    if size > len(y):
        raise UserError(f"{what}_size={size} exceeds the {len(y)} {what} examples of {name}; ask for at most {len(y)}.")
    # sorted so a subset keeps the source's order (class-ordered files stay recognisable)
    index = torch.from_numpy(np.sort(_rng(seed, f"{name}-{what}-subset").permutation(len(y))[:size]))
    return x[index], y[index]


def load_dataset(name: str, data_dir=None, train_size=None, test_size=None, seed: int = 0, **params) -> Dataset:
    """Load or generate dataset `name` (one of DATASETS) as CPU tensors.

    `train_size`/`test_size` draw seeded random subsets; `seed` also seeds the
    synthetic generators. `params` go to the dataset:

    - cifar10: ``download`` (fetch and md5-check the official archive into
      ``data_dir``, ``$CIFAR10_DIR`` or ``~/.cache/certified-defences/cifar10``
      when nothing is there yet; never otherwise);
    - digits: ``test_fraction`` (0.2; a fixed split, the same for every seed);
    - spheres: ``preset`` (a key of `realdata.synthetic.SPHERES_PRESETS`, whose values are
      the defaults), overridden by ``d``, ``r0``, ``r1`` or ``margin`` (r1 = r0 + margin),
      ``n``, ``n_test``;
    - linear: ``d``, ``gamma``, ``sigma``, ``n``, ``n_test`` (defaults:
      `realdata.synthetic.LINEAR_PRESETS["paper"]`).
    """
    if name not in _LOADERS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    seed = _as_int("seed", seed, 0)
    loader = _LOADERS[name]
    accepted = set(inspect.signature(loader).parameters) - {"seed", "data_dir"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        choices = ", ".join(sorted(accepted)) or "none"
        raise UserError(f"{name} does not take {', '.join(unknown)}; its parameters are: {choices}.")
    kwargs = dict(params)
    if "data_dir" in inspect.signature(loader).parameters:
        kwargs["data_dir"] = data_dir
    elif data_dir is not None:
        raise UserError(f"{name} needs no data directory; drop --data-dir.")
    if "seed" in inspect.signature(loader).parameters:
        kwargs["seed"] = seed
    data = loader(**kwargs)
    data.x_train, data.y_train = _subset(data.x_train, data.y_train, train_size, seed, "train", name)
    data.x_test, data.y_test = _subset(data.x_test, data.y_test, test_size, seed, "test", name)
    if data.x_train.dtype == torch.uint8:  # images kept as bytes by their loader
        data.x_train, data.x_test = _images(data.x_train.numpy()), _images(data.x_test.numpy())
    data.params.update(train_size=train_size, test_size=test_size)
    return data


# --------------------------------------------------------------------------- augmentation

def crop_and_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Crop each zero-padded image at (top, left) to its original size, mirroring it where `flip`.

    `top`/`left` are in [0, 2·pad] per image (pad = no shift); one gather, so it runs on x's device.
    """
    batch, _, height, width = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = top.to(x.device).long()[:, None] + torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device).expand(batch, width)
    cols = torch.where(flip.to(x.device).bool()[:, None], width - 1 - cols, cols) + left.to(x.device).long()[:, None]
    picked = padded[torch.arange(batch, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2).contiguous()  # advanced indexing put the channel axis last


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = PAD) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip with probability ½, per image.

    Random numbers are drawn on `generator`'s own device and moved to x's device,
    so a CPU generator gives the same batch whether x lives on the CPU or a GPU.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects images [B, C, H, W], got shape {tuple(x.shape)}")
    device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.randint(0, 2 * pad + 1, (2, x.shape[0]), generator=generator, device=device)
    flip = torch.randint(0, 2, (x.shape[0],), generator=generator, device=device)
    return crop_and_flip(x, offsets[0], offsets[1], flip, pad)
