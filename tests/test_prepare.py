"""``python -m fedfair prepare``: per-party files from a built-in or a user's data set, seeded."""
from __future__ import annotations

import numpy as np
import pytest

from fedfair.data.party_files import load_party_data, read_file
from fedfair.data.prepare import main

BREAST_CANCER = (569, 212, 357)  # samples, malignant (0), benign (1): scikit-learn's bundled copy


def run(tmp_path, name: str, *args: str) -> str:
    out = tmp_path / name
    assert main(["--source", "breast_cancer", "--out", str(out), *args]) == 0
    return str(out)


def arrays(folder: str, agents: int, fmt: str = "npz"):
    return [read_file(f"{folder}/party_{i}.{fmt}", "t") for i in range(1, agents + 1)] + \
        [read_file(f"{folder}/test.{fmt}", "t")]


def test_uni_sizes_test_split_and_no_sample_twice(tmp_path, capsys):
    out = run(tmp_path, "uni", "--agents", "4", "--partition", "uni")
    *parties, test = arrays(out, 4)
    n, neg, pos = BREAST_CANCER
    n_test = 114  # stratified 20%: ceil(0.2 * 569)
    assert len(test.y) == n_test and abs(int((test.y == 0).sum()) - round(n_test * neg / n)) <= 1
    assert [len(p.y) for p in parties] == [(n - n_test) // 4] * 4  # UNI: floor(pool / N) each
    rows = np.concatenate([p.x for p in parties] + [test.x])
    assert len(np.unique(rows, axis=0)) == len(rows)  # UNI draws without replacement; test apart
    assert 'agent_files = "' in capsys.readouterr().out


def test_pow_and_cla_sizes_and_classes(tmp_path):
    *pw, _ = arrays(run(tmp_path, "pow", "--agents", "4", "--partition", "pow"), 4)
    sizes = [len(p.y) for p in pw]
    a = 1.65911332899  # POW by hand: b = linspace(0.01^(1/a), 0.99^(1/a), N), size_i = ceil(b_i / sum b * pool)
    b = np.linspace(0.01 ** (1 / a), 0.99 ** (1 / a), 4)
    want = [int(np.ceil(v)) for v in b / b.sum() * (455 // 4 * 4)]
    assert sizes == want[:3] + [min(want[3], 455 - sum(want[:3]))]  # the last shard is cut to the pool if need be
    *cl, _ = arrays(run(tmp_path, "cla", "--agents", "4", "--partition", "cla", "--shard-size", "50"), 4)
    # CLA with C = 2, N = 4: c = linspace(1, 2, 4) as int = 1, 1, 1, 2 classes
    assert [np.bincount(p.y, minlength=2).tolist() for p in cl] == [[50, 0], [50, 0], [50, 0], [25, 25]]


def test_label_noise_and_determinism(tmp_path):
    clean = arrays(run(tmp_path, "clean", "--agents", "4", "--seed", "3"), 4)
    noisy = arrays(run(tmp_path, "noisy", "--agents", "4", "--seed", "3", "--label-noise", "0,0,0,0.5"), 4)
    again = arrays(run(tmp_path, "again", "--agents", "4", "--seed", "3", "--label-noise", "0,0,0,0.5"), 4)
    other = arrays(run(tmp_path, "other", "--agents", "4", "--seed", "4"), 4)
    for a, b in zip(noisy, again):
        assert a.sha256 == b.sha256  # same arguments, same bytes
    assert not np.array_equal(clean[0].x, other[0].x)
    for i in range(3):
        assert np.array_equal(clean[i].y, noisy[i].y) and np.array_equal(clean[i].x, noisy[i].x)
    changed = int((clean[3].y != noisy[3].y).sum())
    n = len(clean[3].y)  # round(0.5 n) labels redrawn uniformly from 2 classes: about half of those change
    assert 0 < changed <= round(0.5 * n) and abs(changed - round(0.5 * n) / 2) < 0.2 * n


def test_csv_output_reads_like_npz_and_a_user_file_can_be_split(tmp_path):
    npz = arrays(run(tmp_path, "n", "--agents", "2", "--val-size", "20"), 2)
    csv_out = run(tmp_path, "c", "--agents", "2", "--format", "csv", "--val-size", "20")
    csv = arrays(csv_out, 2, "csv")
    for a, b in zip(npz, csv):
        assert np.array_equal(a.x, b.x.astype(np.float32)) and np.array_equal(a.y, b.y)
    party = load_party_data(f"{csv_out}/party_{{agent}}.csv", f"{csv_out}/test.csv", 2, [],
                            val_file=f"{csv_out}/val.csv",
                            server=True)
    assert party.task.num_train == 20 and len(party.val_indices) == 20
    assert main(["--source", f"{csv_out}/test.csv", "--out", str(tmp_path / "u"), "--agents", "3"]) == 0
    assert len(arrays(str(tmp_path / "u"), 3)) == 4


def test_bad_source_is_one_line(tmp_path, capsys):
    assert main(["--source", "imagenet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["fedfair.prepare: error: --source 'imagenet' is neither a built-in data set (breast_cancer, wine, "
                   "iris, digits, mnist, fashion_mnist, cifar10, mr, sst5) nor a .npz/.csv file"]
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path)])


def test_fewer_label_noise_fractions_than_parties_stop_with_one_line(tmp_path, capsys):
    """--label-noise 0,0.6 for 4 parties used to leave parties 3 and 4 clean without a word."""
    assert main(["--source", "breast_cancer", "--out", str(tmp_path), "--agents", "4", "--label-noise", "0,0.6"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "fedfair.prepare: error: --label-noise 0,0.6 gives 2 fraction(s) for --agents 4: give one per party (0 for a "
        "clean party)"]
    assert not any(tmp_path.iterdir())
