"""load_task('digits') and make_shards: sizes, ownership, noise, validation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedfair.data import DataError, Shard, TaskData, load_task, make_shards


@pytest.fixture(scope="module")
def digits() -> TaskData:
    return load_task("digits", seed=0)


def test_digits_task_shapes_and_normalisation(digits):
    assert digits.kind == "image" and digits.num_classes == 10
    assert digits.num_train + len(digits.test_y) == 1797
    assert len(digits.test_y) == 360  # ceil(0.2 * 1797)
    assert digits.train_x.shape[1:] == (1, 8, 8) and digits.train_x.dtype == torch.float32
    assert abs(float(digits.train_x.mean())) < 1e-4
    assert abs(float(digits.train_x.std()) - 1) < 1e-3
    # stratified: every class within one sample of 20% in the test set
    counts = np.bincount(digits.test_y.numpy(), minlength=10)
    full = np.bincount(np.concatenate([digits.train_y.numpy(), digits.test_y.numpy()]))
    assert np.all(np.abs(counts - 0.2 * full) <= 1)
    assert "load_digits" in digits.source


def test_digits_split_deterministic_by_seed():
    a, b, c = load_task("digits", seed=1), load_task("digits", seed=1), load_task("digits", seed=2)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert len(load_task("digits", test_fraction=0.5).test_y) in (898, 899)


def test_batch_returns_given_labels(digits):
    idx = np.array([0, 5, 7])
    x, y = digits.batch("train", idx)
    assert x.shape == (3, 1, 8, 8) and torch.equal(y, digits.train_y[[0, 5, 7]])
    x2, y2 = digits.batch("train", torch.tensor(idx), labels=np.array([9, 9, 9]))
    assert torch.equal(x, x2) and y2.tolist() == [9, 9, 9] and y2.dtype == torch.int64
    xt, yt = digits.batch("test", idx)
    assert torch.equal(yt, digits.test_y[[0, 5, 7]])
    with pytest.raises(ValueError):
        digits.batch("val", idx)


def test_uni_shards_disjoint_equal(digits):
    shards, val = make_shards(digits, partition="uni", agents=5, seed=0, val_size=100)
    assert len(shards) == 5 and all(isinstance(s, Shard) for s in shards)
    n_avail = digits.num_train - 100
    assert [len(s) for s in shards] == [n_avail // 5] * 5
    owned = np.concatenate([s.indices for s in shards])
    assert len(np.unique(owned)) == len(owned)
    assert len(val) == 100 and not set(val.tolist()) & set(owned.tolist())
    for s in shards:
        assert s.indices.dtype == np.int64 and s.labels.dtype == np.int64
        assert np.array_equal(s.labels, digits.train_y.numpy()[s.indices])


def test_pow_shards_sizes(digits):
    from fedfair.data.partitions import pow_sizes

    shards, val = make_shards(digits, partition="pow", agents=5, seed=0, pool_size=1000)
    assert val.size == 0
    sizes = pow_sizes(1000, 5)
    got = [len(s) for s in shards]
    assert got[:-1] == sizes[:-1] and got[-1] == 1000 - sum(sizes[:-1])


def test_cla_shards_class_sets(digits):
    shards, _ = make_shards(digits, partition="cla", agents=5, seed=0, shard_size=200)
    for s, c in zip(shards, [1, 3, 5, 7, 10]):
        assert len(s) == 200
        assert set(np.unique(s.labels).tolist()) == set(range(c))
    shards, _ = make_shards(digits, partition="cla", agents=4, seed=0)
    assert [len(s) for s in shards] == [digits.num_train // 4] * 4


def test_label_noise_only_listed_agents(digits):
    shards, _ = make_shards(digits, partition="uni", agents=4, seed=0, label_noise=[0.0, 0.6])
    y = digits.train_y.numpy()
    assert np.array_equal(shards[0].labels, y[shards[0].indices])
    wrong = (shards[1].labels != y[shards[1].indices]).mean()
    assert 0.4 < wrong <= 0.6
    for s in shards[2:]:
        assert np.array_equal(s.labels, y[s.indices])
    assert torch.equal(digits.train_y, torch.from_numpy(y))  # task untouched


def test_make_shards_deterministic(digits):
    a, va = make_shards(digits, partition="pow", agents=3, seed=5, val_size=50, label_noise=[0.2])
    b, vb = make_shards(digits, partition="pow", agents=3, seed=5, val_size=50, label_noise=[0.2])
    c, _ = make_shards(digits, partition="pow", agents=3, seed=6, val_size=50, label_noise=[0.2])
    assert np.array_equal(va, vb)
    assert all(np.array_equal(x.indices, y.indices) and np.array_equal(x.labels, y.labels)
               for x, y in zip(a, b))
    assert not np.array_equal(a[0].indices, c[0].indices)


def test_make_shards_errors_name_field(digits):
    n = digits.num_train
    with pytest.raises(ValueError, match=rf"pool_size=5000.*{n - 10}"):
        make_shards(digits, partition="uni", agents=5, seed=0, pool_size=5000, val_size=10)
    with pytest.raises(ValueError, match=rf"val_size=9999.*{n}"):
        make_shards(digits, partition="uni", agents=5, seed=0, val_size=9999)
    with pytest.raises(ValueError, match="partition"):
        make_shards(digits, partition="dirichlet", agents=5, seed=0)
    with pytest.raises(ValueError, match="label_noise"):
        make_shards(digits, partition="uni", agents=2, seed=0, label_noise=[0.1, 0.1, 0.1])


def test_unknown_task_and_data_error_type():
    with pytest.raises(ValueError, match="unknown data set"):
        load_task("imagenet")
    assert issubclass(DataError, ValueError)


# ----------------------------------------------------------------------------- data.cla_pool


def mnist_like(n: int = 60_000) -> TaskData:
    """Labels only (make_shards never reads pixels): a 60k 10-class task named mnist."""
    y = torch.arange(n) % 10
    return TaskData("mnist", "image", torch.empty(0), y, torch.empty(0), y[:10], 10)


def shards_before_cla_pool(task, partition, agents, seed, pool_size=None, shard_size=None, val_size=0,
                           label_noise=()):
    """make_shards as it was before data.cla_pool existed (its three SeedSequence children)."""
    from fedfair.data import partitions as P
    from fedfair.data.shards import default_pool_size, default_shard_size

    val_seq, part_seq, noise_seq = np.random.SeedSequence(seed).spawn(3)
    n = task.num_train
    perm = np.random.default_rng(val_seq).permutation(n).astype(np.int64)
    val, available = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    rng = np.random.default_rng(part_seq)
    y = task.train_y.numpy().astype(np.int64)
    if partition == "cla":
        s = shard_size or default_shard_size(task.name, agents, available.size)
        lists = [available[p] for p in P.cla(y[available], agents, s, task.num_classes, rng)]
    else:
        size = pool_size or default_pool_size(task.name, agents, available.size)
        pool = rng.choice(available, size=size, replace=False).astype(np.int64)
        lists = [pool[p] for p in (P.uni if partition == "uni" else P.pow)(size, agents, rng)]
    noise = [np.random.default_rng(s) for s in noise_seq.spawn(agents)]
    labels = [P.corrupt_labels(y[ix], label_noise[i], task.num_classes, noise[i]) if i < len(label_noise)
              else y[ix] for i, ix in enumerate(lists)]
    return lists, labels, val


@pytest.mark.parametrize("partition", ["uni", "pow", "cla"])
@pytest.mark.parametrize("seed", [0, 7])
def test_full_cla_pool_leaves_shards_unchanged(digits, partition, seed):
    for task, kw in ((digits, {"val_size": 40, "label_noise": [0.0, 0.5]}), (mnist_like(), {"shard_size": 300})):
        lists, labels, val = shards_before_cla_pool(task, partition, 5, seed, **kw)
        for cla_pool in ("full", None):  # explicit and default
            extra = {"cla_pool": cla_pool} if cla_pool else {}
            shards, v = make_shards(task, partition=partition, agents=5, seed=seed, **kw, **extra)
            assert np.array_equal(v, val)
            for s, ix, lab in zip(shards, lists, labels):
                assert np.array_equal(s.indices, ix) and np.array_equal(s.labels, lab)


def test_capped_pool_holds_exactly_pool_size_samples(digits):
    """With draws that saturate the pool, the shards' union is the pool: exactly pool_size samples,
    none from the validation set; classes per agent are CLA's."""
    shards, val = make_shards(digits, partition="cla", agents=5, seed=3, val_size=100, pool_size=200,
                              shard_size=3000, cla_pool="capped")
    union = np.unique(np.concatenate([s.indices for s in shards]))
    assert union.size == 200 and not set(union.tolist()) & set(val.tolist())
    for s, c in zip(shards, [1, 3, 5, 7, 10]):
        assert len(s) == 3000 and set(np.unique(s.labels).tolist()) == set(range(c))


def test_capped_pool_default_size_is_600n():
    """MNIST's default pool is 600*N, drawn by capped_pool from the run seed's fourth child."""
    from fedfair.data.shards import capped_pool

    task = mnist_like()
    for agents in (5, 10):
        shards, val = make_shards(task, partition="cla", agents=agents, seed=1, val_size=500, cla_pool="capped")
        available = np.setdiff1d(np.arange(task.num_train), val)
        pool = capped_pool(available, 600 * agents,
                           np.random.default_rng(np.random.SeedSequence(1).spawn(4)[3]))
        assert np.unique(pool).size == 600 * agents
        assert set(np.concatenate([s.indices for s in shards]).tolist()) <= set(pool.tolist())
        assert [len(s) for s in shards] == [600] * agents


def mean_overlap(shards) -> float:
    """Mean over agent pairs of |A & B| / min(|A|, |B|) on their distinct samples."""
    import itertools

    sets = [set(s.indices.tolist()) for s in shards]
    return float(np.mean([len(a & b) / min(len(a), len(b)) for a, b in itertools.combinations(sets, 2)]))


def test_capped_pool_agents_overlap_much_more():
    task = mnist_like()
    for seed in range(3):
        full, _ = make_shards(task, partition="cla", agents=5, seed=seed)
        capped, _ = make_shards(task, partition="cla", agents=5, seed=seed, cla_pool="capped")
        # measured: full 0.013-0.016, capped 0.26-0.27 (N=5, S=600, pool 3000 of 60k)
        assert mean_overlap(full) < 0.05 and mean_overlap(capped) > 0.15
        assert mean_overlap(capped) > 10 * mean_overlap(full)


def test_capped_pool_no_effect_on_uni_pow(digits):
    for partition in ("uni", "pow"):
        a, _ = make_shards(digits, partition=partition, agents=4, seed=2, pool_size=800)
        b, _ = make_shards(digits, partition=partition, agents=4, seed=2, pool_size=800, cla_pool="capped")
        assert all(np.array_equal(x.indices, y.indices) for x, y in zip(a, b))


def test_capped_pool_errors(digits):
    with pytest.raises(ValueError, match=rf"pool_size=5000 must be in \[1, {digits.num_train}\]"):
        make_shards(digits, partition="cla", agents=5, seed=0, pool_size=5000, cla_pool="capped")
    with pytest.raises(ValueError, match="cla_pool must be one of"):
        make_shards(digits, partition="cla", agents=5, seed=0, cla_pool="small")


def test_a_bad_setting_names_itself_for_the_caller_to_name_as_its_user_knows_it():
    """make_shards' errors carry the setting (fedfair.runtime.setup names it data.<setting>; no regex)."""
    from fedfair.data import SettingError, load_task, make_shards

    task = load_task("digits")
    with pytest.raises(SettingError) as e:
        make_shards(task, partition="uni", agents=3, seed=0, pool_size=2)
    assert e.value.setting == "pool_size"
    assert e.value.named("data.pool_size") == "data.pool_size=2 is smaller than agents=3: UNI shards would be empty"
    with pytest.raises(SettingError) as e:
        make_shards(task, partition="cla", agents=2, seed=0, copy_of=[0, 2])
    assert e.value.setting == "copy_of" and e.value.named("data.copy_of").startswith("data.copy_of[1]=2 must be 0")
