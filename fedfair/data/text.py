"""Text pipeline without torchtext: tokenizer, vocabulary, per-batch padding, MR/SST-5 loaders.

Sources, in the order they are looked for (data_dir first, then the packaged stand-in):
- MR: the original rt-polarity.pos / rt-polarity.neg (latin-1, one sentence a line; pos = 1).
- SST-5: train.tsv / test.tsv with ``label<TAB>sentence`` lines, labels 0..4 (dev.tsv, if
  present, is not used: partitions and evaluation need only train and test).
- Stand-in for both: rt_movie_sentences.tsv (10,605 Rotten Tomatoes sentences; see
  /work/shared/data/README.md), shipped in fedfair/data/files/ as package data.
  MR stand-in = the 10,453 rows with a polarity (binary). SST-5 stand-in = all rows, five
  classes from the valence v in [-4, 4] rescaled to x = (v + 4) / 8 in [0, 1] and cut at
  SST's own points 0.2/0.4/0.6/0.8 (class = number of cut points <= x), giving
  1021/3772/1022/3751/1039. These are NOT SST's labels.
Data sets without a test split (MR, the stand-in) get a stratified held-out split by seed.
The vocabulary is built from the TRAINING split only, so test words may map to <unk>.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from .base import DataError, TaskData, pad_batch, stratified_split

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
STANDIN_NAME = "rt_movie_sentences.tsv"
PACKAGED_STANDIN = Path(__file__).resolve().parent / "files" / STANDIN_NAME
SST5_CUTS = (0.2, 0.4, 0.6, 0.8)

# --------------------------------------------------------------------------- tokenizer

_CLEAN_RULES = [
    (re.compile(r"[^A-Za-z0-9(),!?'`]"), " "),
    (re.compile(r"'s"), " 's"),
    (re.compile(r"'ve"), " 've"),
    (re.compile(r"n't"), " n't"),
    (re.compile(r"'re"), " 're"),
    (re.compile(r"'d"), " 'd"),
    (re.compile(r"'ll"), " 'll"),
    (re.compile(r","), " , "),
    (re.compile(r"!"), " ! "),
    (re.compile(r"\("), " ( "),
    (re.compile(r"\)"), " ) "),
    (re.compile(r"\?"), " ? "),
    (re.compile(r"\s{2,}"), " "),
]


def clean_str(text: str) -> str:
    """Kim (2014)'s clean_str for MR/SST: keep letters, digits and ( ) , ! ? ' ` only, split
    off clitics ('s 've n't 're 'd 'll) and punctuation, collapse spaces, lower-case.

    Kim's original wrote "\\(" into the output for parentheses (a regex-replacement quirk);
    here they become plain "(" and ")" tokens.
    """
    for pat, rep in _CLEAN_RULES:
        text = pat.sub(rep, text)
    return text.strip().lower()


def tokenize(text: str) -> list[str]:
    """clean_str, then split on whitespace."""
    cleaned = clean_str(text)
    return cleaned.split(" ") if cleaned else []


# --------------------------------------------------------------------------- vocabulary


class Vocab:
    """Token <-> id map built from training sentences only. <pad> = 0, <unk> = 1, then tokens
    by descending frequency (ties alphabetical, so the ids do not depend on input order)."""

    def __init__(self, itos: Sequence[str]):
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError("a Vocab must start with <pad>, <unk>")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> "Vocab":
        """Tokens seen at least ``min_freq`` times; at most ``max_size`` of them (besides the
        two specials) when given."""
        counts = Counter(t for toks in token_lists for t in toks)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK] + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> Tensor:
        """1-D int64 ids; unknown tokens -> 1."""
        return torch.tensor([self.stoi.get(t, UNK_ID) for t in tokens], dtype=torch.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]


def collate(batch: Sequence[tuple[Tensor, int | Tensor]]) -> tuple[Tensor, Tensor]:
    """DataLoader collate_fn for (token ids, label) pairs: pad to the longest sequence of THIS
    batch with <pad> = 0 (no fixed length), labels to int64."""
    seqs = [s for s, _ in batch]
    labels = torch.tensor([int(y) for _, y in batch], dtype=torch.int64)
    return pad_batch(seqs, PAD_ID), labels


# --------------------------------------------------------------------------- file readers


def read_rt_polarity(folder: str | Path) -> tuple[list[str], np.ndarray] | None:
    """rt-polarity.pos / .neg (latin-1, one sentence a line) -> texts, labels (pos = 1).
    None when neither file is in ``folder``; DataError when only one is."""
    folder = Path(folder)
    pos, neg = folder / "rt-polarity.pos", folder / "rt-polarity.neg"
    if not pos.is_file() and not neg.is_file():
        return None
    if not (pos.is_file() and neg.is_file()):
        missing = neg if pos.is_file() else pos
        raise DataError(f"MR files incomplete in {folder}/: {missing.name} is missing")
    texts: list[str] = []
    labels: list[int] = []
    for path, lab in ((neg, 0), (pos, 1)):
        lines = [ln.strip() for ln in path.read_text(encoding="latin-1").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            raise DataError(f"MR file {path} holds no sentences")
        texts += lines
        labels += [lab] * len(lines)
    return texts, np.asarray(labels, dtype=np.int64)


def read_label_tsv(path: str | Path, num_classes: int = 5) -> tuple[list[str], np.ndarray]:
    """``label<TAB>sentence`` lines (UTF-8), labels 0..num_classes-1. A first line whose label
    is not an integer is taken as a header and skipped; any other bad line is a DataError."""
    path = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        lab, sep, text = line.partition("\t")
        try:
            y = int(lab.strip())
        except ValueError:
            if n == 1:
                continue
            raise DataError(f"{path}:{n}: expected 'label<TAB>sentence', got {line[:60]!r}") from None
        if not sep or not 0 <= y < num_classes:
            raise DataError(
                f"{path}:{n}: expected 'label<TAB>sentence' with label in 0..{num_classes - 1}, "
                f"got {line[:60]!r}"
            )
        texts.append(text.strip())
        labels.append(y)
    if not texts:
        raise DataError(f"{path} holds no labelled sentences")
    return texts, np.asarray(labels, dtype=np.int64)


def read_standin(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """rt_movie_sentences.tsv -> texts, valence (float, [-4, 4]), polarity (1/0, -1 unknown)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the stand-in {path}: {e}") from e
    header = lines[0].split("\t") if lines else []
    if header[:4] != ["id", "valence", "polarity", "text"]:
        raise DataError(f"{path} is not rt_movie_sentences.tsv: header {header[:4]}, "
                        "expected id, valence, polarity, text")
    texts, val, pol = [], [], []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split("\t", 3)
        if len(parts) != 4:
            raise DataError(f"{path}:{n}: expected 4 tab-separated fields, got {len(parts)}")
        try:
            val.append(float(parts[1]))
            pol.append(int(parts[2]) if parts[2].strip() else -1)
        except ValueError as e:
            raise DataError(f"{path}:{n}: bad valence/polarity ({e})") from None
        texts.append(parts[3])
    return texts, np.asarray(val, dtype=np.float64), np.asarray(pol, dtype=np.int64)


def valence_to_sst5(valence: np.ndarray) -> np.ndarray:
    """Five SST-style classes from valence: x = (v + 4) / 8, cut at 0.2/0.4/0.6/0.8;
    class = number of cut points <= x (x = 0.2 exactly falls in class 1)."""
    x = (np.asarray(valence, dtype=np.float64) + 4.0) / 8.0
    return np.searchsorted(np.asarray(SST5_CUTS), x, side="right").astype(np.int64)


# --------------------------------------------------------------------------- tasks


def build_text_task(
    name: str,
    train_texts: Sequence[str],
    train_y: np.ndarray,
    test_texts: Sequence[str],
    test_y: np.ndarray,
    num_classes: int,
    source: str,
    min_freq: int = 1,
) -> tuple[TaskData, Vocab]:
    """Tokenize, build the vocabulary from the training split, encode both splits."""
    tr_tok = [tokenize(t) for t in train_texts]
    te_tok = [tokenize(t) for t in test_texts]
    vocab = Vocab.build(tr_tok, min_freq=min_freq)
    task = TaskData(
        name=name,
        kind="text",
        train_x=[vocab.encode(t) for t in tr_tok],
        train_y=torch.as_tensor(np.asarray(train_y), dtype=torch.int64),
        test_x=[vocab.encode(t) for t in te_tok],
        test_y=torch.as_tensor(np.asarray(test_y), dtype=torch.int64),
        num_classes=num_classes,
        vocab_size=len(vocab),
        source=source,
    )
    return task, vocab


def _split_task(name, texts, labels, num_classes, source, seed, test_fraction, min_freq):
    tr, te = stratified_split(labels, test_fraction, seed)
    task, _ = build_text_task(
        name,
        [texts[i] for i in tr],
        labels[tr],
        [texts[i] for i in te],
        labels[te],
        num_classes,
        f"{source}; stratified test split {test_fraction:g}, seed {seed}",
        min_freq,
    )
    return task


def _standin_candidates(data_dir: str | None) -> list[Path]:
    c = [Path(data_dir) / STANDIN_NAME] if data_dir else []
    return c + [PACKAGED_STANDIN]


def _load_standin(data_dir: str | None, what: str, looked: list[str]):
    for p in _standin_candidates(data_dir):
        looked.append(str(p))
        if p.is_file():
            return p, read_standin(p)
    raise DataError(
        f"{what} not found. Looked in: {'; '.join(looked)}. To fix: put the original files in "
        f"data_dir, or copy the stand-in {STANDIN_NAME} (see /work/shared/data/README.md) "
        f"into data_dir or {PACKAGED_STANDIN.parent}/."
    )


def load_mr_task(
    data_dir: str | None = None, *, seed: int = 0, test_fraction: float = 0.2, min_freq: int = 1
) -> TaskData:
    """MR (binary sentence polarity): rt-polarity.pos/.neg from data_dir (flat,
    rt-polaritydata/ or mr/), else the stand-in's 10,453 rows with a polarity."""
    looked: list[str] = []
    if data_dir:
        root = Path(data_dir)
        for d in (root, root / "rt-polaritydata", root / "mr"):
            looked.append(f"{d}/rt-polarity.pos|.neg")
            got = read_rt_polarity(d)
            if got is not None:
                texts, labels = got
                return _split_task("mr", texts, labels, 2, f"rt-polarity files in {d}",
                                   seed, test_fraction, min_freq)
    path, (texts, _val, pol) = _load_standin(data_dir, "MR", looked)
    keep = np.flatnonzero(pol >= 0)
    return _split_task("mr", [texts[i] for i in keep], pol[keep], 2,
                       f"stand-in {path} (rows with polarity)", seed, test_fraction, min_freq)


def load_sst5_task(
    data_dir: str | None = None, *, seed: int = 0, test_fraction: float = 0.2, min_freq: int = 1
) -> TaskData:
    """SST-5: train.tsv + test.tsv (label<TAB>sentence) from data_dir (flat, sst5/ or sst/),
    else the stand-in with five classes binned from valence (see the module docstring)."""
    looked: list[str] = []
    if data_dir:
        root = Path(data_dir)
        for d in (root, root / "sst5", root / "sst"):
            looked.append(f"{d}/train.tsv+test.tsv")
            tr, te = d / "train.tsv", d / "test.tsv"
            if tr.is_file() or te.is_file():
                if not (tr.is_file() and te.is_file()):
                    raise DataError(f"SST-5 files incomplete in {d}/: need both train.tsv and test.tsv")
                trx, try_ = read_label_tsv(tr)
                tex, tey = read_label_tsv(te)
                task, _ = build_text_task("sst5", trx, try_, tex, tey, 5,
                                          f"SST-5 tsv files in {d}", min_freq)
                return task
    path, (texts, val, _pol) = _load_standin(data_dir, "SST-5", looked)
    return _split_task("sst5", texts, valence_to_sst5(val), 5,
                       f"stand-in {path} (valence (v+4)/8 binned at 0.2/0.4/0.6/0.8)",
                       seed, test_fraction, min_freq)
