"""Dataset loaders on tiny files written here, the synthetic distributions, subsets and augmentation."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import struct
import tarfile

import numpy as np
import pytest
import torch

from realdata import data as data_mod
from realdata.data import (CIFAR10_MEAN, CIFAR10_STD, CIFAR10_SUBSET, DATASETS, FASHION_MNIST_DIR,
                           augment_batch, crop_and_flip, load_dataset, read_idx)
from realdata.errors import UserError
from realdata.synthetic import SPHERES_PRESETS


# --------------------------------------------------------------------------- CIFAR-10 files

def _cifar_batches(rng):
    """Five tiny training batches of 3 images and a test batch of 4, as the python-version pickles."""
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = {b"batch_label": b"training batch", b"labels": list(rng.integers(0, 10, 3)),
                                      b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"filenames": [b"x"] * 3}
    batches["test_batch"] = {b"batch_label": b"testing batch", b"labels": list(rng.integers(0, 10, 4)),
                             b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"filenames": [b"x"] * 4}
    return batches


@pytest.fixture
def cifar(tmp_path):
    """A folder tmp/c/cifar-10-batches-py with tiny batches, and the batches themselves."""
    batches = _cifar_batches(np.random.default_rng(0))
    folder = tmp_path / "c" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder, batches


def _archive(folder, path):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


def _expected(batches, names):
    data = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32)
    labels = sum((list(batches[n][b"labels"]) for n in names), [])
    return torch.from_numpy(data.astype(np.float32) / 255), torch.tensor(labels)


TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def test_cifar_folder_gives_images_in_unit_box_with_channel_planes(cifar):
    folder, batches = cifar
    d = load_dataset("cifar10", data_dir=folder)
    x_train, y_train = _expected(batches, TRAIN)
    x_test, y_test = _expected(batches, ["test_batch"])
    assert torch.equal(d.x_train, x_train) and torch.equal(d.y_train, y_train)
    assert torch.equal(d.x_test, x_test) and torch.equal(d.y_test, y_test)
    # the first 1024 bytes of a row are the red plane, row-major
    assert d.x_train[0, 0, 0, 1] == batches["data_batch_1"][b"data"][0, 1] / 255
    assert d.x_train[0, 1, 0, 0] == batches["data_batch_1"][b"data"][0, 1024] / 255
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert (d.num_classes, d.input_shape, d.box, d.augment) == (10, (3, 32, 32), (0.0, 1.0), True)
    assert d.mean == CIFAR10_MEAN and d.std == CIFAR10_STD
    assert d.signal(d.x_train, d.y_train) is None


def test_cifar_parent_folder_and_archive_load_the_same(cifar, tmp_path):
    folder, _ = cifar
    direct = load_dataset("cifar10", data_dir=folder)
    parent = load_dataset("cifar10", data_dir=folder.parent)
    archive = load_dataset("cifar10", data_dir=_archive(folder, tmp_path / "mine.tar.gz"))
    for other in (parent, archive):
        assert torch.equal(other.x_train, direct.x_train) and torch.equal(other.y_test, direct.y_test)


def test_cifar_official_archive_name_is_checked_against_the_md5(cifar, tmp_path, monkeypatch):
    folder, _ = cifar
    official = _archive(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(UserError, match="md5"):
        load_dataset("cifar10", data_dir=official)
    # the folder holding the archive is searched too, and with the right digest it loads
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", hashlib.md5(official.read_bytes()).hexdigest())
    assert len(load_dataset("cifar10", data_dir=tmp_path).y_train) == 15


def test_cifar_truncated_archive_and_batch_are_refused(cifar, tmp_path):
    folder, _ = cifar
    archive = _archive(folder, tmp_path / "mine.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_dataset("cifar10", data_dir=archive)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(UserError, match="data_batch_3 is truncated or corrupt"):
        load_dataset("cifar10", data_dir=folder)


def test_cifar_batch_with_foreign_objects_is_not_unpickled(cifar):
    folder, _ = cifar
    # a pickle that names an arbitrary callable must never be resolved
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(UserError, match="test_batch is truncated or corrupt"):
        load_dataset("cifar10", data_dir=folder)


def test_cifar_missing_folder_or_batch_says_where_and_how(cifar, tmp_path, monkeypatch):
    folder, _ = cifar
    with pytest.raises(UserError, match=r"not found at .*nowhere.*--data-dir.*CIFAR10_DIR"):
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    monkeypatch.setattr(data_mod, "CIFAR10_SUBSET", tmp_path / "no-subset")
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    with pytest.raises(UserError, match="no-subset"):
        load_dataset("cifar10")
    (folder / "data_batch_5").unlink()
    with pytest.raises(UserError, match="has no data_batch_5"):
        load_dataset("cifar10", data_dir=folder)


def test_cifar_environment_variable_is_used_without_data_dir(cifar, monkeypatch):
    folder, _ = cifar
    monkeypatch.setenv("CIFAR10_DIR", str(folder.parent))
    assert len(load_dataset("cifar10").y_test) == 4


def test_cifar_download_only_on_request_verifies_and_keeps_the_archive(cifar, tmp_path, monkeypatch):
    folder, _ = cifar
    served = _archive(folder, tmp_path / "served.tar.gz")
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        shutil.copyfile(served, dest)

    monkeypatch.setattr(data_mod, "_fetch_url", fake_fetch)
    target = tmp_path / "dl"
    with pytest.raises(UserError, match="md5"):
        load_dataset("cifar10", data_dir=target, download=True)
    assert list(target.iterdir()) == []  # an unverified download leaves nothing behind
    with pytest.raises(UserError, match="not found"):
        load_dataset("cifar10", data_dir=target)
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", hashlib.md5(served.read_bytes()).hexdigest())
    assert len(load_dataset("cifar10", data_dir=target, download=True).y_train) == 15
    assert len(load_dataset("cifar10", data_dir=target, download=True).y_train) == 15
    assert len(calls) == 2 and (target / "cifar-10-python.tar.gz").is_file()
    # the batches were unpacked once, and the folder is what later loads read
    assert load_dataset("cifar10", data_dir=target).params["source"] == str(target / "cifar-10-batches-py")
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


@pytest.mark.skipif(not CIFAR10_SUBSET.is_dir(), reason="the shared CIFAR-10 subset is not beside this checkout")
def test_cifar_real_subset_is_the_default(monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    d = load_dataset("cifar10", train_size=500, test_size=100)
    assert d.params["source"] == str(CIFAR10_SUBSET)
    assert d.x_train.shape == (500, 3, 32, 32) and len(d.y_test) == 100
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert set(d.y_train.tolist()) == set(range(10))
    # the standard statistics should describe the real images to within a couple of percent
    assert torch.allclose(d.x_train.mean((0, 2, 3)), torch.tensor(CIFAR10_MEAN), atol=0.03)


# --------------------------------------------------------------------------- MNIST-format IDX

def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_idx_set(folder, rng, gz, n_train=6, n_test=4, size=28):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, array in arrays.items():
        blob = _idx(array)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(blob) if gz else blob)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_load_raw_or_gzipped(tmp_path, gz):
    arrays = _write_idx_set(tmp_path / "m", np.random.default_rng(1), gz)
    d = load_dataset("mnist", data_dir=tmp_path / "m")
    assert torch.equal(d.x_train, torch.from_numpy(arrays["train-images-idx3-ubyte"][:, None] / np.float32(255)))
    assert d.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert (d.input_shape, d.num_classes, d.box, d.mean, d.augment) == ((1, 28, 28), 10, (0.0, 1.0), None, False)


def test_idx_torchvision_raw_layout_for_fashion_mnist(tmp_path):
    _write_idx_set(tmp_path / "FashionMNIST" / "raw", np.random.default_rng(2), gz=True, size=9)
    d = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert d.input_shape == (1, 9, 9) and len(d.y_train) == 6


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file_is_refused(tmp_path, gz):
    _write_idx_set(tmp_path, np.random.default_rng(3), gz)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_bad_magic_and_mismatched_counts_are_refused(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 20)  # float IDX, not unsigned bytes
    with pytest.raises(UserError, match="not an unsigned-byte IDX"):
        read_idx(bad)
    longer = tmp_path / "longer"
    longer.write_bytes(_idx(np.zeros((2, 3, 3), np.uint8)) + b"\x00")  # more bytes than the header promises
    with pytest.raises(UserError, match="promises 34"):
        read_idx(longer)
    _write_idx_set(tmp_path / "m", np.random.default_rng(4), gz=False)
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(3, np.uint8)))
    with pytest.raises(UserError, match="disagree"):
        load_dataset("mnist", data_dir=tmp_path / "m")


def test_idx_missing_files_name_the_parts_and_the_fix(tmp_path, monkeypatch):
    _write_idx_set(tmp_path, np.random.default_rng(5), gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError, match=r"t10k-images were not found.*--data-dir.*MNIST_DIR"):
        load_dataset("mnist", data_dir=tmp_path)
    monkeypatch.delenv("MNIST_DIR", raising=False)
    with pytest.raises(UserError, match="MNIST_DIR"):
        load_dataset("mnist")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    d = load_dataset("fashion-mnist", train_size=1000)
    assert d.x_train.shape == (1000, 1, 28, 28) and len(d.y_test) == 10_000
    assert d.y_test.bincount().tolist() == [1000] * 10  # the official test set is balanced


# --------------------------------------------------------------------------- digits and subsets

def test_digits_are_scaled_and_split_the_same_for_every_seed():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=3)
    assert len(a.y_train) + len(a.y_test) == 1797 and len(a.y_test) == 359
    assert a.input_shape == (1, 8, 8) and a.x_train.max() == 1 and a.x_train.min() == 0
    assert torch.equal(a.x_test, b.x_test)


def test_subsets_are_seeded_rows_of_the_full_set():
    full = load_dataset("digits")
    s0 = load_dataset("digits", train_size=100, test_size=50, seed=0)
    s0_again = load_dataset("digits", train_size=100, test_size=50, seed=0)
    s1 = load_dataset("digits", train_size=100, seed=1)
    assert s0.x_train.shape == (100, 1, 8, 8) and len(s0.y_test) == 50 and len(s1.y_test) == len(full.y_test)
    assert torch.equal(s0.x_train, s0_again.x_train) and not torch.equal(s0.x_train, s1.x_train)
    rows = {tuple(r) for r in full.x_train.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in s0.x_train.flatten(1).tolist())
    assert s0.params["train_size"] == 100
    with pytest.raises(UserError, match="exceeds the 1438 train"):
        load_dataset("digits", train_size=5000)


def test_bad_names_parameters_and_seeds_get_one_sentence():
    with pytest.raises(UserError, match="choose one of " + ", ".join(DATASETS)):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="spheres does not take gamma"):
        load_dataset("spheres", gamma=1.0)
    with pytest.raises(UserError, match="needs no data directory"):
        load_dataset("linear", data_dir="/tmp")
    with pytest.raises(UserError, match="seed"):
        load_dataset("linear", seed=-1)


# --------------------------------------------------------------------------- synthetic data

def test_spheres_points_lie_on_the_two_shells_uniformly():
    d = load_dataset("spheres", preset="2023", n=20_000, n_test=10)
    radius = d.x_train.norm(dim=1)
    assert torch.allclose(radius, torch.where(d.y_train == 0, 1.0, 21.0), rtol=1e-5)
    assert abs(d.y_train.float().mean().item() - 0.5) < 0.02
    # uniform direction: mean ≈ 0 and second moment ≈ I/d on the unit sphere
    unit = d.x_train / radius[:, None]
    assert unit.mean(0).abs().max() < 0.03
    assert torch.allclose((unit ** 2).mean(0), torch.full((10,), 0.1), atol=0.01)
    assert (d.input_shape, d.num_classes, d.box, d.mean) == ((10,), 2, None, None)


def test_spheres_presets_and_radius_parameters():
    p22 = load_dataset("spheres", n_test=10).params
    assert (p22["d"], p22["n"], p22["r0"], p22["r1"], p22["n_test"]) == (100, 50, 1.0, 12.0, 10)
    assert load_dataset("spheres", n=1).params["n_test"] == SPHERES_PRESETS["2022"].n_test
    p23 = load_dataset("spheres", preset="2023", r0=2, n_test=10).params  # 2023 keeps its margin of 20
    assert (p23["d"], p23["n"], p23["r1"], p23["margin"]) == (10, 500, 22.0, 20.0)
    d = load_dataset("spheres", d=3, r0=2, margin=5, n=40, n_test=30)
    assert d.x_train.shape == (40, 3) and len(d.y_test) == 30
    assert set(d.x_test.norm(dim=1).round(decimals=4).tolist()) <= {2.0, 7.0}


@pytest.mark.parametrize("bad", [dict(r0=3, r1=2), dict(r0=2, r1=2), dict(d=0), dict(n=-5), dict(n_test=0),
                                 dict(r0=-1), dict(r1=5, margin=1), dict(preset="2021"), dict(d=2.5)])
def test_spheres_bad_parameters(bad):
    with pytest.raises(UserError):
        load_dataset("spheres", **bad)


def test_spheres_signal_is_radial_unit_and_points_to_the_gap():
    d = load_dataset("spheres", d=5, r0=1, r1=3, n=200, n_test=10)
    s = d.signal(d.x_train, d.y_train)
    assert torch.allclose(s.norm(dim=1), torch.ones(200))
    cosine = (s * d.x_train).sum(1) / d.x_train.norm(dim=1)
    assert torch.allclose(cosine, torch.where(d.y_train == 0, 1.0, -1.0))
    # a unit step along the signal lands both classes on the middle radius 2
    assert torch.allclose((d.x_train + s).norm(dim=1), torch.full((200,), 2.0), atol=1e-5)


def test_synthetic_data_are_seeded_with_separate_train_and_test_draws():
    a, b, c = (load_dataset("spheres", d=4, n=30, n_test=30, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_train, a.x_test)
    la, lb = load_dataset("linear", d=3, seed=1), load_dataset("linear", d=3, seed=2)
    assert not torch.equal(la.x_train, lb.x_train)


def test_linear_distribution_statistics():
    d = load_dataset("linear", d=6, gamma=2.5, sigma=0.5, n=20_000, n_test=5)
    sign = 2 * d.y_train.float() - 1
    assert torch.equal(d.x_train[:, 0], 2.5 * sign)
    assert abs(sign.mean().item()) < 0.03
    assert d.x_train[:, 1:].mean().abs() < 0.01
    assert torch.allclose(d.x_train[:, 1:].std(0), torch.full((5,), 0.5), rtol=0.03)
    assert d.params == dict(d=6, gamma=2.5, sigma=0.5, n=20_000, n_test=5, seed=0, train_size=None, test_size=None)


def test_linear_signal_is_minus_y_e1():
    d = load_dataset("linear", d=4, n=50, n_test=5)
    s = d.signal(d.x_train, d.y_train)
    expected = torch.zeros(50, 4)
    expected[:, 0] = -(2 * d.y_train.float() - 1)
    assert torch.equal(s, expected)
    # a step of γ along it reaches the boundary x₁ = 0
    assert torch.allclose((d.x_train + 6.0 * s)[:, 0], torch.zeros(50))


@pytest.mark.parametrize("bad", [dict(gamma=0), dict(sigma=-1), dict(d=0), dict(n=-1), dict(gamma="x")])
def test_linear_bad_parameters(bad):
    with pytest.raises(UserError):
        load_dataset("linear", **bad)


# --------------------------------------------------------------------------- augmentation

def _reference_crop_flip(img: torch.Tensor, top: int, left: int, flip: bool, pad: int = 4) -> torch.Tensor:
    """Pixel-by-pixel definition: shift by (top−pad, left−pad) with zero fill, then mirror."""
    c, h, w = img.shape
    out = torch.zeros_like(img)
    for i in range(h):
        for j in range(w):
            r, q = i + top - pad, (w - 1 - j if flip else j) + left - pad
            if 0 <= r < h and 0 <= q < w:
                out[:, i, j] = img[:, r, q]
    return out


def test_crop_and_flip_on_a_hand_made_image():
    img = torch.arange(1.0, 1 + 2 * 5 * 5).reshape(1, 2, 5, 5)
    one = lambda t, l, f: crop_and_flip(img, torch.tensor([t]), torch.tensor([l]), torch.tensor([f]))[0]
    assert torch.equal(one(4, 4, 0), img[0])
    assert torch.equal(one(4, 4, 1), img[0].flip(-1))
    shifted = one(5, 4, 0)  # window one row lower: content moves up, zero row enters at the bottom
    assert torch.equal(shifted[:, :-1], img[0, :, 1:]) and torch.equal(shifted[:, -1], torch.zeros(2, 5))
    assert torch.equal(one(0, 0, 0)[:, 4:, 4:], img[0, :, :1, :1])
    # every one of the 9 × 9 × 2 placements agrees with the pixel-by-pixel definition
    grid = [(t, l, f) for t in range(9) for l in range(9) for f in (0, 1)]
    batch = img.expand(len(grid), -1, -1, -1)
    top, left, flip = (torch.tensor(v) for v in zip(*grid))
    out = crop_and_flip(batch, top, left, flip)
    for k, (t, l, f) in enumerate(grid):
        assert torch.equal(out[k], _reference_crop_flip(img[0], t, l, bool(f))), (t, l, f)


def test_augment_batch_is_seeded_keeps_shape_and_uses_every_placement():
    img = torch.rand(1, 3, 6, 6)
    batch = img.expand(400, -1, -1, -1)
    a = augment_batch(batch, torch.Generator().manual_seed(0))
    b = augment_batch(batch, torch.Generator().manual_seed(0))
    c = augment_batch(batch, torch.Generator().manual_seed(1))
    assert a.shape == batch.shape and a.dtype == batch.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    candidates = torch.stack([_reference_crop_flip(img[0], t, l, f) for t in range(9) for l in range(9) for f in (False, True)])
    match = (a[:, None] == candidates[None]).flatten(2).all(2)
    assert match.any(1).all()  # each output is one valid crop of its input
    flipped = match[:, 1::2].any(1).float().mean().item()
    assert 0.4 < flipped < 0.6
    assert match.any(0).sum() > 100  # most of the 162 placements occur in 400 draws
    assert augment_batch(batch[:2]).shape == (2, 3, 6, 6)  # the global generator works too
