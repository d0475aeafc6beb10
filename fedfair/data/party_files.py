"""Each party's own data files (``data.dataset = "files"``): read, summarise, check.

A party's file is ``.npz`` (arrays ``x`` [n, ...] and ``y`` [n]) or ``.csv`` (a header, numeric
feature columns and the label column ``data.label_column``). A rank reads only the files of the
agents it hosts plus the common test file; the server reads only the test and validation files.
What the parties compare is a fixed-size summary per file (:func:`summarize`: sample shape,
dtype, label range, class counts, sha256 of the file), never data: every party checks its own
files against the test file before any process group exists, and the server checks every
party's summary again once they are exchanged (fedfair.runtime.datafiles). Every problem is ONE
line naming the agent and the file.
"""
from __future__ import annotations

import csv
import hashlib
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .base import DataError, TaskData
from .shards import Shard

FORMATS = (".npz", ".csv")
DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
"""Feature dtypes a file may hold; the summary carries the index."""
MAX_DIMS = 4
"""Dimensions of one sample a summary can carry (tabular: 1, images: 3)."""
PATH_BYTES = 256
"""Bytes of the file name a summary carries (longer names are cut), for the run's record."""
# summary layout (int64): [present, rank, samples, ndim, shape x MAX_DIMS, dtype, y_min, y_max,
#                          sha256 x 32, test sha256 x 32, path x PATH_BYTES, class counts x C]
PRESENT, RANK, SAMPLES, NDIM, SHAPE = 0, 1, 2, 3, 4
DTYPE = SHAPE + MAX_DIMS
YMIN, YMAX, SHA = DTYPE + 1, DTYPE + 2, DTYPE + 3
TEST_SHA = SHA + 32
PATH = TEST_SHA + 32
COUNTS = PATH + PATH_BYTES


class FileProblem(DataError):
    """A party's (or the test/validation) file is missing, corrupt or does not fit the others.

    ``local`` is True when one rank found it before the process group exists: that rank reports
    it (rank 0 cannot see another party's files)."""

    def __init__(self, message: str, local: bool = True) -> None:
        super().__init__(message)
        self.local = local


@dataclass
class PartyFile:
    """One file as read: features (as stored), integer labels, where from and its content hash;
    a CSV file's feature column names (None for .npz), by which it is matched to the test file."""
    who: str
    path: str
    x: np.ndarray
    y: np.ndarray
    sha256: bytes
    columns: list[str] | None = None


def agent_path(template: str, agent: int) -> str:
    """The file of agent ``agent`` (1..N): the template with {agent} filled in."""
    return template.replace("{agent}", str(agent))


def read_file(path: str, who: str, label_column: str = "label") -> PartyFile:
    """Read one .npz or .csv file; any problem is one line naming ``who`` and the file."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise FileProblem(f"{who}: data file {path!r} is neither .npz nor .csv")
    if not p.is_file():
        raise FileProblem(f"{who}: data file {path!r} not found")
    raw = p.read_bytes()
    x, y = _read_npz(path, who) if p.suffix.lower() == ".npz" else _read_csv(path, who, label_column)
    if x.ndim < 2 or x.shape[0] == 0:
        raise FileProblem(f"{who}: {path!r} holds x of shape {list(x.shape)}: expected [samples, features...] "
                          "with at least one sample")
    if x.ndim - 1 > MAX_DIMS:
        raise FileProblem(f"{who}: {path!r} holds samples of {x.ndim - 1} dimensions, at most {MAX_DIMS}")
    if x.dtype.name not in DTYPES:
        raise FileProblem(f"{who}: {path!r} holds x of dtype {x.dtype}: expected numbers ({', '.join(DTYPES)})")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise FileProblem(f"{who}: {path!r} holds y of shape {list(y.shape)} for {x.shape[0]} samples: "
                          f"expected [{x.shape[0]}]")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and
                                                  np.all(np.isfinite(y)) and np.all(y == np.round(y)))):
        raise FileProblem(f"{who}: {path!r} holds labels that are not whole numbers (dtype {y.dtype})")
    columns = header_columns(path, who, label_column) if p.suffix.lower() == ".csv" else None
    check_finite(x, path, who, columns)
    return PartyFile(who, path, x, y.astype(np.int64), hashlib.sha256(raw).digest(), columns)


def check_finite(x: np.ndarray, path: str, who: str, columns: list[str] | None) -> None:
    """Features must be finite as training sees them: cast to float32 (every model trains on float32
    inputs; train.dtype = float64 widens them after), so 1e39 in a float64 file is infinite too."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(x.astype(np.float32))
    if not bad.any():
        return
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    value, count = float(x[where]), int(bad.sum())
    if columns is not None:  # CSV: line (1 = header) and column name
        at = f"line {where[0] + 2}, column {columns[where[1]]!r}"
    else:
        at = f"x[{', '.join(map(str, where))}] (sample {where[0]}, feature {', '.join(map(str, where[1:]))})"
    what = "beyond float32's range (training casts features to float32)" if math.isfinite(value) else "not finite"
    raise FileProblem(f"{who}: {path!r} holds {value!r} at {at}, {what}; {count} such value(s) in the file")


def header_columns(path: str, who: str, label_column: str) -> list[str]:
    """A CSV file's feature column names, in file order (the label column left out); each once."""
    with open(path, newline="") as f:
        header = [h.strip() for h in next(csv.reader(f))]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise FileProblem(f"{who}: {path!r} has column(s) {', '.join(map(repr, twice))} more than once in its header")
    return [h for h in header if h != label_column]


def match_columns(f: PartyFile, reference: PartyFile) -> PartyFile:
    """Put a CSV file's features in the reference (test) file's column order, matched by header name:
    the same set of columns in another order is reordered; a missing or extra column is one line. A file
    without column names (.npz), or a reference without them, keeps its order (matched by position)."""
    if f.columns is None or reference.columns is None or f.columns == reference.columns:
        return f
    mine, ref = set(f.columns), set(reference.columns)
    if mine != ref:
        missing = [c for c in reference.columns if c not in mine]
        extra = [c for c in f.columns if c not in ref]
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + \
                ([f"extra {', '.join(map(repr, extra))}"] if extra else [])
        raise FileProblem(f"{f.who}: {f.path!r} does not have the test file {reference.path!r}'s feature columns: "
                          f"{'; '.join(parts)} (CSV columns are matched by header name)")
    order = [f.columns.index(c) for c in reference.columns]
    return PartyFile(f.who, f.path, np.ascontiguousarray(f.x[:, order]), f.y, f.sha256, list(reference.columns))


def _read_npz(path: str, who: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise FileProblem(f"{who}: {path!r} has no array {' or '.join(missing)} (it has "
                                  f"{', '.join(f.files) or 'none'}): expected arrays x and y")
            return np.asarray(f["x"]), np.asarray(f["y"])
    except FileProblem:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise FileProblem(f"{who}: cannot read {path!r} as .npz with arrays x and y: "
                          f"{type(e).__name__}: {e}".replace("\n", " ")) from None


def _read_csv(path: str, who: str, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FileProblem(f"{who}: cannot read {path!r} as CSV: {type(e).__name__}: {e}") from None
    if not rows:
        raise FileProblem(f"{who}: {path!r} is empty: expected a header and rows")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise FileProblem(f"{who}: {path!r} has no label column {label_column!r} (data.label_column); "
                          f"its columns: {', '.join(header[:8])}{', ...' if len(header) > 8 else ''}")
    col = header.index(label_column)
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise FileProblem(f"{who}: {path!r} line {i + 2} has {len(row)} fields, the header {len(header)}")
        try:
            values[i] = [float(v) for v in row]
        except ValueError:
            bad = next(v for v in row if not _is_number(v))
            raise FileProblem(f"{who}: {path!r} line {i + 2} holds {bad!r}, not a number") from None
    return np.delete(values, col, axis=1), values[:, col]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def summarize(f: PartyFile, num_classes: int, rank: int = 0, test_sha: bytes = b"") -> np.ndarray:
    """The fixed-size int64 summary the parties exchange: shapes, counts and hashes, never data."""
    row = np.zeros(COUNTS + num_classes, dtype=np.int64)
    row[PRESENT], row[RANK], row[SAMPLES], row[NDIM] = 1, rank, f.x.shape[0], f.x.ndim - 1
    row[SHAPE:SHAPE + f.x.ndim - 1] = f.x.shape[1:]
    row[DTYPE] = DTYPES.index(f.x.dtype.name)
    row[YMIN], row[YMAX] = int(f.y.min()), int(f.y.max())
    row[SHA:SHA + 32] = np.frombuffer(f.sha256, dtype=np.uint8)
    if test_sha:
        row[TEST_SHA:TEST_SHA + 32] = np.frombuffer(test_sha, dtype=np.uint8)
    name = f.path.encode()[:PATH_BYTES]
    row[PATH:PATH + len(name)] = np.frombuffer(name, dtype=np.uint8)
    inside = f.y[(f.y >= 0) & (f.y < num_classes)]
    row[COUNTS:] = np.bincount(inside, minlength=num_classes)[:num_classes]
    return row


def summary_path(row: np.ndarray) -> str:
    return bytes(row[PATH:PATH + PATH_BYTES].astype(np.uint8)).rstrip(b"\0").decode(errors="replace")


def sample_shape(row: np.ndarray) -> list[int]:
    return [int(s) for s in row[SHAPE:SHAPE + int(row[NDIM])]]


def check_summary(row: np.ndarray, ref: np.ndarray, who: str, ref_name: str, num_classes: int,
                  local: bool = True) -> None:
    """A party's summary against the test file's: same sample shape and dtype, labels in 0..C-1."""
    path = summary_path(row)
    if sample_shape(row) != sample_shape(ref):
        raise FileProblem(f"{who}: {path!r} has samples of shape {sample_shape(row)}, the test file {ref_name!r} "
                          f"has {sample_shape(ref)}: every party needs the same features", local)
    if row[DTYPE] != ref[DTYPE]:
        raise FileProblem(f"{who}: {path!r} holds x of dtype {DTYPES[row[DTYPE]]}, the test file {ref_name!r} "
                          f"{DTYPES[ref[DTYPE]]}", local)
    if row[YMIN] < 0 or row[YMAX] >= num_classes:
        bad = int(row[YMIN]) if row[YMIN] < 0 else int(row[YMAX])
        raise FileProblem(f"{who}: {path!r} holds label {bad}, out of range 0..{num_classes - 1} "
                          f"({num_classes} classes: data.num_classes, or the test file's largest label + 1)", local)
    if ref[SHA:SHA + 32].any() and row[TEST_SHA:TEST_SHA + 32].any() and \
            not np.array_equal(row[TEST_SHA:TEST_SHA + 32], ref[SHA:SHA + 32]):
        raise FileProblem(f"{who}: its copy of the test file {ref_name!r} differs from the server's (sha256): "
                          "every party must evaluate on the same test set", local)


@dataclass
class PartyData:
    """What one rank read: the task (its agents' samples as 'train', the test file as 'test'), one
    shard per agent (empty for agents hosted elsewhere), the summaries of its files, and the paths
    it opened, in order."""
    task: TaskData
    shards: list[Shard]
    val_indices: np.ndarray
    num_classes: int
    test_summary: np.ndarray
    summaries: dict[int, np.ndarray] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)
    rows: np.ndarray | None = None
    """Every agent's summary as exchanged at start-up (fedfair.runtime.datafiles), once it has been."""


def load_party_data(template: str, test_file: str, agents: int, hosted: list[int], val_file: str = "",
                    label_column: str = "label", num_classes: int = 0, rank: int = 0,
                    server: bool = False) -> PartyData:
    """Read the test file, then the files of the ``hosted`` agents (on the server: the validation
    file, if any), check each against the test file, and assemble the rank's task."""
    with_val = bool(val_file) and server
    opened = [test_file]
    test = read_file(test_file, "data.test_file", label_column)
    classes = num_classes or int(test.y.max()) + 1
    if test.y.min() < 0 or test.y.max() >= classes:
        raise FileProblem(f"data.test_file: {test_file!r} holds label {int(test.y.max())}, "
                          f"out of range 0..{classes - 1} "
                          "(data.num_classes)")
    ref = summarize(test, classes)
    parts, summaries = [], {}
    if with_val:
        opened.append(val_file)
        val = match_columns(read_file(val_file, "data.val_file", label_column), test)
        check_summary(summarize(val, classes), ref, "data.val_file", test_file, classes)
        parts.append(val)
    for agent in hosted:
        path = agent_path(template, agent)
        opened.append(path)
        f = match_columns(read_file(path, f"data.agent_files: agent {agent}", label_column), test)
        summaries[agent] = summarize(f, classes, rank, test.sha256)
        check_summary(summaries[agent], ref, f"data.agent_files: agent {agent}", test_file, classes)
        parts.append(f)
    shape = test.x.shape[1:]
    train_x = np.concatenate([p.x for p in parts]) if parts else np.zeros((0, *shape), test.x.dtype)
    train_y = np.concatenate([p.y for p in parts]) if parts else np.zeros(0, np.int64)
    kind = "image" if test.x.ndim == 4 else "tabular"
    task = TaskData("files", kind, _features(train_x), torch.from_numpy(train_y), _features(test.x),
                    torch.from_numpy(test.y), classes, source=template)
    shards = [Shard(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(agents)]
    start = parts[0].x.shape[0] if with_val else 0
    for agent in hosted:
        n = int(summaries[agent][SAMPLES])
        shards[agent - 1] = Shard(np.arange(start, start + n, dtype=np.int64), train_y[start:start + n].copy())
        start += n
    val_indices = np.arange(parts[0].x.shape[0], dtype=np.int64) if with_val else np.zeros(0, np.int64)
    return PartyData(task, shards, val_indices, classes, ref, summaries, opened)


def _features(x: np.ndarray) -> torch.Tensor:
    """Features as float32 (what the models train on); the stored dtype is checked, not kept."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
