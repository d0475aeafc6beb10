"""``load_task``: one entry point that maps a data set name to its loader."""

from __future__ import annotations

from pathlib import Path

from .base import TaskData
from .pixels import IMAGE_PADS

#: Names accepted by :func:`load_task` (aliases map onto these).
TASKS = ("digits", "mnist", "fashion_mnist", "cifar10", "mr", "sst5")
#: Data sets with 28x28 images that image_pad = "data" pads to 32x32.
PAD_TASKS = ("mnist", "fashion_mnist")
_ALIASES = {
    "fashion-mnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar": "cifar10",
    "cifar-10": "cifar10",
    "sst": "sst5",
    "sst-5": "sst5",
}


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(TASKS)}")
    return key


def load_task(
    name: str,
    data_dir: str | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    image_pad: str = "model",
) -> TaskData:
    """Load a data set by name, split and normalised.

    ``seed``/``test_fraction`` only matter where the data has no test set of its own
    (digits, MR, the stand-in TSV); they make that held-out split stratified and repeatable.
    ``image_pad = "data"`` (mnist, fashion_mnist only) pads the 28x28 images to 32x32 before
    standardising, as the reference code does; other data sets reject it (digits' 8x8 model
    cannot take 32x32, CIFAR-10 is 32x32 already, text has no pixels).
    Missing or corrupt files raise :class:`DataError` with one message saying what, where
    and how to get it.
    """
    key = canonical_name(name)
    data_dir = data_dir or None  # "" in a config means "the default places"
    if image_pad not in IMAGE_PADS:
        raise ValueError(f"image_pad must be one of {', '.join(IMAGE_PADS)}, got {image_pad!r}")
    if image_pad != "model" and key not in PAD_TASKS:
        raise ValueError(f"image_pad = {image_pad!r} pads 28x28 images to 32x32, so only for "
                         f"{' or '.join(PAD_TASKS)}, not {key}")
    if key == "digits":
        from .images import load_digits_task

        return load_digits_task(seed=seed, test_fraction=test_fraction)
    if key in ("mnist", "fashion_mnist", "cifar10"):  # one memory-mapped copy per machine (data/cache.py)
        from . import images
        from .cache import cached_task, fingerprint

        sources = [Path(data_dir)] if data_dir else images.default_sources(key)
        settings = {"dataset": key, "image_pad": image_pad, "files": fingerprint(sources)}
        if key == "cifar10":
            return cached_task(settings, lambda: images.load_cifar10_task(data_dir))
        loader = images.load_mnist_task if key == "mnist" else images.load_fashion_mnist_task
        return cached_task(settings, lambda: loader(data_dir, image_pad=image_pad))
    if key == "mr":
        from .text import load_mr_task

        return load_mr_task(data_dir, seed=seed, test_fraction=test_fraction)
    from .text import load_sst5_task

    return load_sst5_task(data_dir, seed=seed, test_fraction=test_fraction)
