"""Tokenizer, vocabulary, collate, and the MR / SST-5 loaders on tiny files in real formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedfair.data import DataError, load_task, make_shards
from fedfair.data import text as T
from fedfair.models import build_model


def test_clean_str_kim_rules():
    assert T.tokenize("It's a GREAT film, isn't it?!") == [
        "it", "'s", "a", "great", "film", ",", "is", "n't", "it", "?", "!"]
    assert T.tokenize("We've (sadly) they'd; you'll -- they're") == [
        "we", "'ve", "(", "sadly", ")", "they", "'d", "you", "'ll", "they", "'re"]
    assert T.tokenize("   ") == [] and T.tokenize("Café") == ["caf"]


def test_vocab_from_training_only_with_unk_and_min_freq():
    train = [["a", "b", "a"], ["c", "a", "b"]]
    v = T.Vocab.build(train)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c"]  # by frequency, ties alphabetical
    assert v.encode(["a", "zzz", "c"]).tolist() == [2, 1, 4]
    assert v.encode([]).dtype == torch.int64 and v.encode([]).numel() == 0
    v2 = T.Vocab.build(train, min_freq=2)
    assert v2.itos == ["<pad>", "<unk>", "a", "b"] and v2.encode(["c"]).tolist() == [1]
    assert len(T.Vocab.build(train, max_size=1)) == 3


def test_collate_pads_per_batch():
    batch = [(torch.tensor([5, 6, 7]), 1), (torch.tensor([8]), 0)]
    x, y = T.collate(batch)
    assert x.tolist() == [[5, 6, 7], [8, 0, 0]] and y.tolist() == [1, 0]
    x, _ = T.collate([(torch.tensor([9]), 0)])
    assert x.shape == (1, 1)  # no fixed length
    x, _ = T.collate([(torch.tensor([], dtype=torch.int64), 0)])
    assert x.tolist() == [[0]]


def write_rt_polarity(folder, n=10):
    folder.mkdir(parents=True, exist_ok=True)
    pos = [f"a wonderful caf\xe9 film number {i} ." for i in range(n)]
    neg = [f"a dull , boring film number {i} ." for i in range(n)]
    (folder / "rt-polarity.pos").write_bytes(("\n".join(pos) + "\n").encode("latin-1"))
    (folder / "rt-polarity.neg").write_bytes(("\n".join(neg) + "\n").encode("latin-1"))


def test_mr_original_files_stratified_split(tmp_path):
    write_rt_polarity(tmp_path / "rt-polaritydata")
    task = load_task("mr", str(tmp_path), seed=0, test_fraction=0.2)
    assert task.kind == "text" and task.num_classes == 2
    assert task.num_train == 16 and task.test_y.tolist().count(1) == 2  # 2 of each class in test
    assert "rt-polarity files" in task.source
    x, y = task.batch("test", np.arange(4))
    assert x.dtype == torch.int64 and x.shape[0] == 4 and sorted(y.tolist()) == [0, 0, 1, 1]
    # vocab = exactly the training tokens: 8 words ("." is cleaned away) + the digits seen
    seen = set(torch.cat(task.train_x).tolist())
    assert seen == set(range(2, task.vocab_size)) and 2 + 8 + 8 <= task.vocab_size <= 2 + 8 + 10
    same = load_task("mr", str(tmp_path), seed=0)
    assert torch.equal(same.test_y, task.test_y)
    assert all(torch.equal(a, b) for a, b in zip(same.train_x, task.train_x))


def test_mr_incomplete(tmp_path):
    write_rt_polarity(tmp_path)
    (tmp_path / "rt-polarity.neg").unlink()
    with pytest.raises(DataError, match="rt-polarity.neg is missing"):
        load_task("mr", str(tmp_path))


def test_sst5_tsv_files(tmp_path):
    d = tmp_path / "sst5"
    d.mkdir()
    rows = [f"{i % 5}\tsentence number {i} is {'good' if i % 5 > 2 else 'bad'}" for i in range(15)]
    (d / "train.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    (d / "test.tsv").write_text("4\tgood but unseenword\n0\tbad\n")
    task = load_task("sst5", str(tmp_path))
    assert task.num_train == 15 and task.num_test == 2 and task.num_classes == 5
    assert task.class_counts() == [3] * 5
    assert T.UNK_ID in task.test_x[0].tolist()  # vocab from training data only
    (d / "test.tsv").write_text("7\tout of range\n")
    with pytest.raises(DataError, match="label in 0..4"):
        load_task("sst5", str(tmp_path))
    (d / "test.tsv").unlink()
    with pytest.raises(DataError, match="need both train.tsv and test.tsv"):
        load_task("sst5", str(tmp_path))


def write_standin(path, rows):
    path.write_text("id\tvalence\tpolarity\ttext\n" +
                    "".join(f"{i}\t{v}\t{p}\t{t}\n" for i, (v, p, t) in enumerate(rows, 1)))


def test_standin_in_data_dir_mr_and_sst5(tmp_path):
    vals = [-4.0, -2.4, -2.3, -0.8, -0.7, 0.8, 0.9, 2.4, 2.5, 4.0]
    # x = (v+4)/8: 0, .2, .2125, .4, .4125, .6, .6125, .8, .8125, 1 -> classes
    assert T.valence_to_sst5(np.array(vals)).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    rows = [(v, (1 if v > 0 else 0) if k % 7 else "", f"it's sentence {k} \"quoted\" here")
            for k in range(6) for v in vals]
    write_standin(tmp_path / T.STANDIN_NAME, rows)
    mr = load_task("mr", str(tmp_path), seed=1, test_fraction=0.25)
    n_pol = sum(1 for r in rows if r[1] != "")
    assert mr.num_train + mr.num_test == n_pol and str(tmp_path) in mr.source
    sst = load_task("sst5", str(tmp_path), seed=1, test_fraction=0.25)
    assert sst.num_train + sst.num_test == 60 and sst.num_classes == 5
    assert sorted(set(sst.train_y.tolist())) == [0, 1, 2, 3, 4]
    (tmp_path / T.STANDIN_NAME).write_text("a\tb\n1\t2\n")
    with pytest.raises(DataError, match="not rt_movie_sentences.tsv"):
        load_task("mr", str(tmp_path))


def test_packaged_standin_present_and_sized():
    texts, val, pol = T.read_standin(T.PACKAGED_STANDIN)
    assert len(texts) == 10_605
    assert ((pol == 1).sum(), (pol == 0).sum(), (pol < 0).sum()) == (5215, 5238, 152)
    assert np.bincount(T.valence_to_sst5(val)).tolist() == [1021, 3772, 1022, 3751, 1039]


def test_missing_standin_message(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "PACKAGED_STANDIN", tmp_path / "gone" / T.STANDIN_NAME)
    with pytest.raises(DataError) as e:
        load_task("sst5", str(tmp_path))
    msg = str(e.value)
    assert "SST-5 not found" in msg and "train.tsv" in msg and str(tmp_path / "gone") in msg


def test_text_task_shards_and_text_cnn_forward(tmp_path):
    write_rt_polarity(tmp_path, n=30)
    task = load_task("mr", str(tmp_path))
    shards, _ = make_shards(task, partition="pow", agents=3, seed=0)
    assert sum(len(s) for s in shards) <= task.num_train
    torch.manual_seed(0)
    m = build_model("text_cnn", task)
    x, y = task.batch("train", shards[2].indices[:8], shards[2].labels[:8])
    out = m(x)
    assert out.shape == (8, 2) and torch.allclose(out.exp().sum(1), torch.ones(8), atol=1e-5)
