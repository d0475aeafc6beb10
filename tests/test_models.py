"""Model parameter counts (spec), forward shapes, determinism, and a digits training check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedfair.data import TaskData, load_task
from fedfair.models import build_model, default_model_for


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def fake_image_task(c: int, h: int, w: int, n: int = 4) -> TaskData:
    x = torch.randn(n, c, h, w)
    y = torch.arange(n) % 10
    return TaskData("fake", "image", x, y, x, y, 10)


def test_mnist_cnn_exact_params_and_shape():
    task = fake_image_task(1, 28, 28)
    m = build_model("mnist_cnn", task)
    assert n_params(m) == 104_242
    out = m(task.train_x)
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_cifar_cnn_exact_params_and_shape():
    task = fake_image_task(3, 32, 32)
    m = build_model("cifar_cnn", task)
    assert n_params(m) == 121_182
    assert m(task.train_x).shape == (4, 10)
    with pytest.raises(ValueError, match="32x32"):
        build_model("cifar_cnn", fake_image_task(1, 28, 28))


def test_digits_cnn_small_and_deterministic():
    task = fake_image_task(1, 8, 8)
    torch.manual_seed(3)
    a = build_model("digits_cnn", task)
    torch.manual_seed(3)
    b = build_model("digits_cnn", task)
    assert 1000 < n_params(a) < 10_000
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a(task.train_x).shape == (4, 10)


def test_text_cnn_shapes_and_short_sequences():
    x = [torch.tensor([2, 3, 4, 5]), torch.tensor([2])]
    y = torch.tensor([0, 1])
    task = TaskData("fake", "text", x, y, x, y, 2, vocab_size=6)
    m = build_model("text_cnn", task)
    emb = 6 * 300
    conv = 3 * (128 * 3 * 300 + 128)
    assert n_params(m) == emb + conv + 384 * 2 + 2
    m.eval()
    assert m(torch.tensor([[2]])).shape == (1, 2)  # shorter than the kernel
    assert m(torch.tensor([[2, 3, 4, 5, 0, 0]])).shape == (1, 2)
    with pytest.raises(ValueError):
        build_model("text_cnn", fake_image_task(1, 8, 8))


def test_default_model_for():
    assert default_model_for("digits") == "digits_cnn"
    assert default_model_for("mnist") == "mnist_cnn"
    assert default_model_for("fashion_mnist") == "mnist_cnn"
    assert default_model_for("cifar10") == "cifar_cnn"
    assert default_model_for("mr") == "text_cnn" and default_model_for("sst5") == "text_cnn"
    with pytest.raises(ValueError):
        build_model("resnet", fake_image_task(1, 8, 8))


@pytest.fixture
def one_thread():
    """Tiny models run ~30x slower with 2 intra-op threads on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_digits_cnn_trains_above_90_percent(one_thread):
    task = load_task("digits", seed=0)
    torch.manual_seed(0)
    m = build_model("digits_cnn", task)
    opt = torch.optim.SGD(m.parameters(), lr=0.15)  # plain SGD, as the runtime uses
    g = np.random.default_rng(0)
    for _ in range(200):
        x, y = task.batch("train", g.integers(0, task.num_train, 32))
        opt.zero_grad()
        F.nll_loss(m(x), y).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        acc = (m(task.test_x).argmax(1) == task.test_y).float().mean().item()
    assert acc > 0.9
